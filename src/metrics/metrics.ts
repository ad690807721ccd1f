import { Registry } from 'prom-client'
import { registerBrokerMetrics, type BrokerMetrics } from '../broker/broker-metrics.ts'
import { registerClusterMetrics, type ClusterMetrics } from '../cluster/cluster-metrics.ts'
import { registerTokenGateMetrics, type TokenGateMetrics } from '../http/token-gate-metrics.ts'
import { registerPushMetrics, type PushMetrics } from '../push/push-metrics.ts'
import { registerUplinkMetrics, type UplinkMetrics } from '../uplink/uplink-metrics.ts'
import { collectProcessMetrics } from './process-metrics.ts'
import { registerRedisMetrics, type RedisMetrics } from './redis-metrics.ts'

// The Prometheus registry of one process (no global default registry: tests build many), with the node id on
// every metric. Each part defines its instruments in its own file; all are registered in every role, so a
// process lists the same names whatever it runs (a part that is absent leaves its instruments at zero).

export interface Metrics {
  readonly registry: Registry
  readonly broker: BrokerMetrics
  readonly uplink: UplinkMetrics
  readonly push: PushMetrics
  readonly cluster: ClusterMetrics
  readonly redis: RedisMetrics
  readonly tokenGate: TokenGateMetrics
}

export function createMetrics (opts: { nodeId: string, defaultMetrics?: boolean }): Metrics {
  const registry = new Registry()
  registry.setDefaultLabels({ node_id: opts.nodeId })
  if (opts.defaultMetrics !== false) collectProcessMetrics(registry)
  return {
    registry,
    broker: registerBrokerMetrics(registry),
    uplink: registerUplinkMetrics(registry),
    push: registerPushMetrics(registry),
    cluster: registerClusterMetrics(registry),
    redis: registerRedisMetrics(registry),
    tokenGate: registerTokenGateMetrics(registry)
  }
}
