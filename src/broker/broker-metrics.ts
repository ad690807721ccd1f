import { Counter, Gauge, type Registry } from 'prom-client'
import type { NetworkBytes } from '../metrics/network-bytes.ts'
import type { UplinkKind } from '../shared/topics.ts'
import { scrapeSource, scrapedGauge, scrapedTotal } from '../metrics/scrape-source.ts'

// The broker node's instruments: connects, sessions, ACL, uplinks taken from devices, the flood guard and the
// bytes on MQTT connections. Registered in every role; without a broker they stay at zero.

export type RefusalReason = 'bad_client_id' | 'bad_credentials' | 'bad_certificate' | 'not_authorized' | 'anonymous_off' | 'server_unavailable' | 'draining' | 'max_connections' | 'connect_rate' | 'busy' | 'wait_expired'

export interface BrokerMetrics {
  readonly connectsRefused: Counter<'reason'>
  readonly connects: Counter
  /**
   * The bound on connects being authenticated (PUSHLINE_CONNECT_CONCURRENCY); its refusals count as reason `busy`
   * (queue full) or `wait_expired` (waited PUSHLINE_CONNECT_QUEUE_WAIT_MS).
   */
  readonly connectsAuthenticating: Gauge
  readonly connectsQueued: Gauge
  /** Connects dropped without their check: the client closed its connection first. */
  readonly connectsAbandoned: Counter
  readonly connections: Gauge
  readonly aclDenied: Counter<'op'>
  readonly uplinks: Counter<'kind' | 'qos'>
  /**
   * One uplink accepted: counted in a plain number and added to `uplinks` when it is read. A labelled inc hashes
   * and checks its labels on every call (a bound child too), a cost every uplink on the receive path paid.
   */
  countUplink (kind: UplinkKind, qos: 0 | 1 | 2): void
  readonly uplinksRefused: Counter<'reason'>
  readonly uplinksThrottled: Counter
  readonly deliveriesDropped: Counter<'reason'>
  readonly publishersPaused: Counter
  readonly deliveryBacklog: Gauge
  /** The broker node's live sessions, read on every scrape. */
  readConnectionsFrom (read: () => number): void
  /** The flood guard's QoS 0 deliveries scheduled and not yet written, read on every scrape. */
  readDeliveryBacklogFrom (read: () => number): void
  /** The listeners' byte meter, read on every scrape. */
  readNetworkBytesFrom (read: () => NetworkBytes): void
}

export function registerBrokerMetrics (registry: Registry): BrokerMetrics {
  const registers = [registry]
  const connections = scrapeSource<number>()
  const backlog = scrapeSource<number>()
  const bytes = scrapeSource<NetworkBytes>()
  scrapedTotal(registry, 'pushline_mqtt_received_bytes_total', 'bytes read from MQTT connections (TCP and WebSocket, framing included)', () => bytes.read()?.received)
  /** Uplinks counted and not yet added to the counter, by kind and QoS. */
  const uplinksPending: Record<UplinkKind, [number, number, number]> = { telemetry: [0, 0, 0], events: [0, 0, 0] }
  const uplinks = new Counter({
    name: 'pushline_uplinks_total',
    help: 'uplinks accepted, by kind and QoS',
    labelNames: ['kind', 'qos'],
    registers,
    collect () {
      for (const kind of ['telemetry', 'events'] as const) {
        const counts = uplinksPending[kind]
        for (let qos = 0; qos < counts.length; qos++) {
          const n = counts[qos] as number
          if (n === 0) continue
          counts[qos] = 0
          this.inc({ kind, qos }, n)
        }
      }
    }
  })
  scrapedTotal(registry, 'pushline_mqtt_sent_bytes_total', 'bytes written to MQTT connections (TCP and WebSocket, framing included)', () => bytes.read()?.sent)
  return {
    connectsRefused: new Counter({ name: 'pushline_connects_refused_total', help: 'MQTT connects refused, by reason', labelNames: ['reason'], registers }),
    connects: new Counter({ name: 'pushline_connects_total', help: 'MQTT connects accepted', registers }),
    connectsAuthenticating: new Gauge({ name: 'pushline_connects_authenticating', help: 'MQTT connects whose credentials this node is checking (at most PUSHLINE_CONNECT_CONCURRENCY)', registers }),
    connectsQueued: new Gauge({ name: 'pushline_connects_queued', help: 'MQTT connects waiting for a check (at most PUSHLINE_CONNECT_QUEUE, each for at most PUSHLINE_CONNECT_QUEUE_WAIT_MS); beyond them CONNACK 3, counted as pushline_connects_refused_total{reason="busy"}, and {reason="wait_expired"} for those that waited too long', registers }),
    connectsAbandoned: new Counter({ name: 'pushline_connects_abandoned_total', help: 'MQTT connects dropped without their credential check because the client closed its connection before the check started', registers }),
    connections: scrapedGauge(registry, 'pushline_connections', 'live MQTT connections on this node', connections.read),
    aclDenied: new Counter({ name: 'pushline_acl_denied_total', help: 'publishes and subscriptions refused by the ACL', labelNames: ['op'], registers }),
    uplinks,
    countUplink (kind, qos) { uplinksPending[kind][qos]++ },
    uplinksRefused: new Counter({ name: 'pushline_uplinks_refused_total', help: 'uplinks refused, by reason', labelNames: ['reason'], registers }),
    uplinksThrottled: new Counter({ name: 'pushline_uplinks_throttled_total', help: 'uplinks delayed by the per-device rate limit', registers }),
    deliveriesDropped: new Counter({ name: 'pushline_deliveries_dropped_total', help: 'QoS 0 messages not delivered to a subscriber: its socket was full (slow_subscriber) or the node was overloaded (node_overloaded)', labelNames: ['reason'], registers }),
    publishersPaused: new Counter({ name: 'pushline_publishers_paused_total', help: 'times a connection was no longer read until the node caught up with its QoS 0 deliveries (PUSHLINE_DELIVERY_QUEUE_MAX)', registers }),
    deliveryBacklog: scrapedGauge(registry, 'pushline_delivery_backlog', 'QoS 0 deliveries scheduled and not yet written (bounded by PUSHLINE_DELIVERY_QUEUE_MAX)', backlog.read),
    readConnectionsFrom: connections.from,
    readDeliveryBacklogFrom: backlog.from,
    readNetworkBytesFrom: bytes.from
  }
}
