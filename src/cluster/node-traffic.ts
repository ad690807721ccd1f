import type { Counter } from 'prom-client'
import type { NodeTraffic } from '../stores/node-registry.ts'

// The traffic counters a broker node writes into its registry record at every heartbeat: cumulative counts
// read from its Prometheus counters, plus the current spool depth. Any API process
// can then show cluster-wide rates without scraping each node.

export interface TrafficSampler {
  sample (): Promise<NodeTraffic>
}

export interface TrafficSamplerDeps {
  readonly uplinks: Counter<string>
  readonly downlinks: Counter<string>
  readonly kafkaRecords: Counter<string>
  readonly spoolDepth: () => number
}

async function total (counter: Counter<string>): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0)
}

export function createTrafficSampler (deps: TrafficSamplerDeps): TrafficSampler {
  return {
    async sample () {
      return { uplinks: await total(deps.uplinks), downlinks: await total(deps.downlinks), kafkaRecords: await total(deps.kafkaRecords), spoolDepth: deps.spoolDepth() }
    }
  }
}
