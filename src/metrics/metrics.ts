import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

// All Prometheus metrics of one process, on its own registry (no global default registry: tests build many).

export type RefusalReason = 'bad_client_id' | 'bad_credentials' | 'bad_certificate' | 'not_authorized' | 'anonymous_off' | 'server_unavailable' | 'draining' | 'max_connections' | 'connect_rate'

/** What the uplink bridge reports when metrics are scraped (the spool and, with Kafka, the shipper). */
export interface BridgeStatus {
  readonly unshippedRecords: number
  readonly unshippedBytes: number
  /** Undefined without Kafka. */
  readonly kafkaConnected?: boolean
  /** Age of the oldest uplink not yet in Kafka, in seconds (0 when caught up). */
  readonly lagSeconds?: number
}

export interface Metrics {
  readonly registry: Registry
  readonly connectsRefused: Counter<'reason'>
  readonly connects: Counter
  readonly connections: Gauge
  /** Set by the broker node: live sessions, read on every scrape. */
  connectionsSource: (() => number) | undefined
  readonly aclDenied: Counter<'op'>
  readonly uplinks: Counter<'kind' | 'qos'>
  readonly uplinksRefused: Counter<'reason'>
  readonly spoolRecords: Counter
  readonly spoolBytes: Counter
  readonly pubsubGaps: Counter
  readonly pubsubGapSeconds: Counter
  readonly presenceEvents: Counter
  readonly presenceEventsDropped: Counter
  readonly spoolWaits: Counter
  readonly uplinksDropped: Counter<'reason'>
  readonly uplinksThrottled: Counter
  readonly kafkaRecords: Counter
  readonly kafkaBytes: Counter
  readonly kafkaBatches: Counter
  readonly kafkaSendFailures: Counter
  readonly kafkaDeadLetters: Counter
  /** Set once the spool (and shipper) exist; read on every scrape. */
  bridgeStatus: (() => BridgeStatus) | undefined
  readonly deliveriesDropped: Counter<'reason'>
  readonly publishersPaused: Counter
  readonly deliveryBacklog: Gauge
  /** Set by the flood guard: QoS 0 deliveries scheduled and not yet written, read on every scrape. */
  deliveryBacklogSource: (() => number) | undefined
  /** Downlinks written to devices' connections, by kind (device, broadcast) and the QoS they went out with. */
  readonly downlinks: Counter<'kind' | 'qos'>
  /** QoS 1 downlinks the device acknowledged with PUBACK, by kind. */
  readonly downlinksDelivered: Counter<'kind'>
  /** Receipt transitions, by the state entered (count-only pushes: the counts they add). */
  readonly receipts: Counter<'state'>
  /** Records of receipt transitions written to the receipts spool, and those that could not be (logged). */
  readonly receiptRecords: Counter
  readonly receiptRecordsDropped: Counter
  /** Set once the receipts spool (and its shipper) exist; read on every scrape. */
  receiptStreamStatus: (() => BridgeStatus) | undefined
  /** This node's live sessions minus its presence entries, as the last reconciliation found them. */
  readonly presenceDrift: Gauge
  /** Round trips to Redis (a periodic PING on the main connection). */
  readonly redisRoundTrip: Histogram
  readonly redisPingFailures: Counter
  /** Waits for the Redis replicas before a 201 or 202 (replica-wait.ts): their duration, and those that timed out. */
  readonly redisWaitSeconds: Histogram
  readonly redisWaitTimeouts: Counter
  /** Set by the broker node's listeners: bytes read from and written to MQTT connections, read on every scrape. */
  networkBytesSource: (() => NetworkBytes) | undefined
}

/** Bytes that crossed MQTT connections (TCP and WebSocket) since start, the closed ones included. */
export interface NetworkBytes {
  readonly received: number
  readonly sent: number
}

export function createMetrics (opts: { nodeId: string, defaultMetrics?: boolean }): Metrics {
  const registry = new Registry()
  registry.setDefaultLabels({ node_id: opts.nodeId })
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  let bridgeStatus: (() => BridgeStatus) | undefined
  let receiptStreamStatus: (() => BridgeStatus) | undefined
  let connectionsSource: (() => number) | undefined
  let networkBytesSource: (() => NetworkBytes) | undefined
  // A counter read from a running total: each scrape adds what the total gained since the last one.
  const totalCounter = (name: string, help: string, read: (b: NetworkBytes) => number): Counter => {
    let last = 0
    return new Counter({
      name,
      help,
      registers,
      collect () {
        const b = networkBytesSource?.()
        if (b === undefined) return
        const total = read(b)
        if (total > last) this.inc(total - last)
        last = Math.max(last, total)
      }
    })
  }
  totalCounter('pushline_mqtt_received_bytes_total', 'bytes read from MQTT connections (TCP and WebSocket, framing included)', (b) => b.received)
  totalCounter('pushline_mqtt_sent_bytes_total', 'bytes written to MQTT connections (TCP and WebSocket, framing included)', (b) => b.sent)
  let deliveryBacklogSource: (() => number) | undefined
  const bridgeGauge = (name: string, help: string, read: (s: BridgeStatus) => number | undefined, source = () => bridgeStatus): Gauge => new Gauge({
    name,
    help,
    registers,
    collect () {
      const status = source()?.()
      const value = status === undefined ? undefined : read(status)
      if (value !== undefined) this.set(value)
    }
  })
  bridgeGauge('pushline_spool_unshipped_records', 'uplinks in the spool not yet in Kafka (all of them without Kafka)', (s) => s.unshippedRecords)
  bridgeGauge('pushline_spool_unshipped_bytes', 'spool bytes of those uplinks (bounded by PUSHLINE_SPOOL_MAX_BYTES)', (s) => s.unshippedBytes)
  bridgeGauge('pushline_kafka_connected', '1 while the last produce to Kafka succeeded', (s) => s.kafkaConnected === undefined ? undefined : Number(s.kafkaConnected))
  bridgeGauge('pushline_kafka_lag_seconds', 'age of the oldest uplink not yet in Kafka', (s) => s.lagSeconds)
  bridgeGauge('pushline_receipt_records_unshipped', 'receipt records in the receipts spool not yet in Kafka (all of them without Kafka)', (s) => s.unshippedRecords, () => receiptStreamStatus)
  bridgeGauge('pushline_receipt_stream_kafka_connected', '1 while the last produce of receipt records to Kafka succeeded', (s) => s.kafkaConnected === undefined ? undefined : Number(s.kafkaConnected), () => receiptStreamStatus)
  return {
    get connectionsSource () { return connectionsSource },
    set connectionsSource (fn) { connectionsSource = fn },
    get bridgeStatus () { return bridgeStatus },
    set bridgeStatus (fn) { bridgeStatus = fn },
    get receiptStreamStatus () { return receiptStreamStatus },
    set receiptStreamStatus (fn) { receiptStreamStatus = fn },
    get networkBytesSource () { return networkBytesSource },
    set networkBytesSource (fn) { networkBytesSource = fn },
    get deliveryBacklogSource () { return deliveryBacklogSource },
    set deliveryBacklogSource (fn) { deliveryBacklogSource = fn },
    registry,
    connectsRefused: new Counter({ name: 'pushline_connects_refused_total', help: 'MQTT connects refused, by reason', labelNames: ['reason'], registers }),
    connects: new Counter({ name: 'pushline_connects_total', help: 'MQTT connects accepted', registers }),
    connections: new Gauge({
      name: 'pushline_connections',
      help: 'live MQTT connections on this node',
      registers,
      collect () { if (connectionsSource !== undefined) this.set(connectionsSource()) }
    }),
    aclDenied: new Counter({ name: 'pushline_acl_denied_total', help: 'publishes and subscriptions refused by the ACL', labelNames: ['op'], registers }),
    uplinks: new Counter({ name: 'pushline_uplinks_total', help: 'uplinks accepted, by kind and QoS', labelNames: ['kind', 'qos'], registers }),
    uplinksRefused: new Counter({ name: 'pushline_uplinks_refused_total', help: 'uplinks refused, by reason', labelNames: ['reason'], registers }),
    spoolRecords: new Counter({ name: 'pushline_spool_records_total', help: 'uplinks written to the spool', registers }),
    spoolBytes: new Counter({ name: 'pushline_spool_bytes_total', help: 'bytes written to the spool', registers }),
    pubsubGaps: new Counter({ name: 'pushline_pubsub_gaps_total', help: 'times the Redis subscriber connection was lost and came back', registers }),
    pubsubGapSeconds: new Counter({ name: 'pushline_pubsub_gap_seconds_total', help: 'time without a Redis subscriber connection', registers }),
    presenceEvents: new Counter({ name: 'pushline_presence_events_total', help: 'presence events acknowledged by Kafka', registers }),
    presenceEventsDropped: new Counter({ name: 'pushline_presence_events_dropped_total', help: 'presence events dropped because the queue was full while Kafka was away', registers }),
    spoolWaits: new Counter({ name: 'pushline_spool_waits_total', help: 'QoS 1/2 uplinks whose PUBACK waited because the spool was full', registers }),
    uplinksDropped: new Counter({ name: 'pushline_uplinks_dropped_total', help: 'uplinks accepted from a device and then dropped, by reason', labelNames: ['reason'], registers }),
    uplinksThrottled: new Counter({ name: 'pushline_uplinks_throttled_total', help: 'uplinks delayed by the per-device rate limit', registers }),
    kafkaRecords: new Counter({ name: 'pushline_kafka_records_total', help: 'uplinks acknowledged by Kafka', registers }),
    kafkaBytes: new Counter({ name: 'pushline_kafka_bytes_total', help: 'payload bytes acknowledged by Kafka', registers }),
    kafkaBatches: new Counter({ name: 'pushline_kafka_batches_total', help: 'produce requests acknowledged by Kafka', registers }),
    kafkaSendFailures: new Counter({ name: 'pushline_kafka_send_failures_total', help: 'produce attempts that failed (the batch is sent again)', registers }),
    deliveriesDropped: new Counter({ name: 'pushline_deliveries_dropped_total', help: 'QoS 0 messages not delivered to a subscriber: its socket was full (slow_subscriber) or the node was overloaded (node_overloaded)', labelNames: ['reason'], registers }),
    publishersPaused: new Counter({ name: 'pushline_publishers_paused_total', help: 'times a connection was no longer read until the node caught up with its QoS 0 deliveries (PUSHLINE_DELIVERY_QUEUE_MAX)', registers }),
    deliveryBacklog: new Gauge({
      name: 'pushline_delivery_backlog',
      help: 'QoS 0 deliveries scheduled and not yet written (bounded by PUSHLINE_DELIVERY_QUEUE_MAX)',
      registers,
      collect () { if (deliveryBacklogSource !== undefined) this.set(deliveryBacklogSource()) }
    }),
    kafkaDeadLetters: new Counter({ name: 'pushline_kafka_dead_letters_total', help: 'uplinks Kafka refused for good (too large), kept in the spool directory\'s dead-letter file', registers }),
    downlinks: new Counter({ name: 'pushline_downlinks_total', help: 'downlinks written to devices\' connections, by kind (device, broadcast) and QoS', labelNames: ['kind', 'qos'], registers }),
    downlinksDelivered: new Counter({ name: 'pushline_downlinks_delivered_total', help: 'QoS 1 downlinks acknowledged by the device (PUBACK), by kind', labelNames: ['kind'], registers }),
    receipts: new Counter({ name: 'pushline_receipts_total', help: 'receipt transitions, by the state entered', labelNames: ['state'], registers }),
    receiptRecords: new Counter({ name: 'pushline_receipt_records_total', help: 'records of receipt transitions written to the receipts spool (on their way to Kafka)', registers }),
    receiptRecordsDropped: new Counter({ name: 'pushline_receipt_records_dropped_total', help: 'records of receipt transitions that could not be written to the receipts spool (logged; the transition itself is kept)', registers }),
    presenceDrift: new Gauge({ name: 'pushline_presence_drift', help: 'live sessions on this node minus its presence entries, at the last reconciliation (before repair)', registers }),
    redisRoundTrip: new Histogram({
      name: 'pushline_redis_roundtrip_seconds',
      help: 'Redis round-trip time of a periodic PING',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers
    }),
    redisPingFailures: new Counter({ name: 'pushline_redis_ping_failures_total', help: 'periodic Redis PINGs that failed or timed out', registers }),
    redisWaitSeconds: new Histogram({
      name: 'pushline_redis_wait_seconds',
      help: 'duration of one replica-wait round (a marker write, then WAIT): one round serves every device creation and push that arrived while the previous round ran, so a single request can wait up to two rounds; not observed when the primary has no replica connected',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers
    }),
    redisWaitTimeouts: new Counter({ name: 'pushline_redis_wait_timeouts_total', help: 'waits for the Redis replicas that timed out (the answer went out unconfirmed)', registers })
  }
}
