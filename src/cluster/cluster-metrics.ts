import { Counter, Gauge, type Registry } from 'prom-client'

// The cluster parts' instruments: the Redis pub/sub transport's gaps and the presence reconciliation.

export interface ClusterMetrics {
  readonly pubsubGaps: Counter
  readonly pubsubGapSeconds: Counter
  /** This node's live sessions minus its presence entries, as the last reconciliation found them. */
  readonly presenceDrift: Gauge
}

export function registerClusterMetrics (registry: Registry): ClusterMetrics {
  const registers = [registry]
  return {
    pubsubGaps: new Counter({ name: 'pushline_pubsub_gaps_total', help: 'times the Redis subscriber connection was lost and came back', registers }),
    pubsubGapSeconds: new Counter({ name: 'pushline_pubsub_gap_seconds_total', help: 'time without a Redis subscriber connection', registers }),
    presenceDrift: new Gauge({ name: 'pushline_presence_drift', help: 'live sessions on this node minus its presence entries, at the last reconciliation (before repair)', registers })
  }
}
