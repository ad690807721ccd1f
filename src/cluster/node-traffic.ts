import type { Counter } from 'prom-client'
import type { NodeTraffic } from '../stores/node-registry.ts'

// The traffic counters a broker node writes into its registry record at every heartbeat: cumulative counts
// read from its Prometheus counters and a local downlink count, plus the current spool depth. Any API process
// can then show cluster-wide rates without scraping each node.

export interface TrafficSampler {
  /** For the push agent: one downlink written. */
  countDownlink (): void
  sample (): Promise<NodeTraffic>
}

export interface TrafficSamplerDeps {
  readonly uplinks: Counter<string>
  readonly kafkaRecords: Counter<string>
  readonly spoolDepth: () => number
}

async function total (counter: Counter<string>): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0)
}

export function createTrafficSampler (deps: TrafficSamplerDeps): TrafficSampler {
  let downlinks = 0
  return {
    countDownlink () { downlinks++ },
    async sample () {
      return { uplinks: await total(deps.uplinks), downlinks, kafkaRecords: await total(deps.kafkaRecords), spoolDepth: deps.spoolDepth() }
    }
  }
}
