import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

// All Prometheus metrics of one process, on its own registry (no global default registry: tests build many).

export type RefusalReason = 'bad_client_id' | 'bad_credentials' | 'not_authorized' | 'anonymous_off' | 'server_unavailable' | 'draining'

export interface Metrics {
  readonly registry: Registry
  readonly connectsRefused: Counter<'reason'>
  readonly connects: Counter
  readonly connections: Gauge
  readonly aclDenied: Counter<'op'>
  readonly uplinks: Counter<'kind' | 'qos'>
  readonly uplinksRefused: Counter<'reason'>
  readonly spoolRecords: Counter
  readonly spoolBytes: Counter
  readonly pubsubGaps: Counter
  readonly pubsubGapSeconds: Counter
}

export function createMetrics (opts: { nodeId: string, defaultMetrics?: boolean }): Metrics {
  const registry = new Registry()
  registry.setDefaultLabels({ node_id: opts.nodeId })
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    connectsRefused: new Counter({ name: 'pushline_connects_refused_total', help: 'MQTT connects refused, by reason', labelNames: ['reason'], registers }),
    connects: new Counter({ name: 'pushline_connects_total', help: 'MQTT connects accepted', registers }),
    connections: new Gauge({ name: 'pushline_connections', help: 'live MQTT connections on this node', registers }),
    aclDenied: new Counter({ name: 'pushline_acl_denied_total', help: 'publishes and subscriptions refused by the ACL', labelNames: ['op'], registers }),
    uplinks: new Counter({ name: 'pushline_uplinks_total', help: 'uplinks accepted, by kind and QoS', labelNames: ['kind', 'qos'], registers }),
    uplinksRefused: new Counter({ name: 'pushline_uplinks_refused_total', help: 'uplinks refused, by reason', labelNames: ['reason'], registers }),
    spoolRecords: new Counter({ name: 'pushline_spool_records_total', help: 'uplinks written to the spool', registers }),
    spoolBytes: new Counter({ name: 'pushline_spool_bytes_total', help: 'bytes written to the spool', registers }),
    pubsubGaps: new Counter({ name: 'pushline_pubsub_gaps_total', help: 'times the Redis subscriber connection was lost and came back', registers }),
    pubsubGapSeconds: new Counter({ name: 'pushline_pubsub_gap_seconds_total', help: 'time without a Redis subscriber connection', registers })
  }
}
