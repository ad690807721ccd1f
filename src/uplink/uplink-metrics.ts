import { Counter, type Registry } from 'prom-client'
import { scrapeSource, scrapedGauge } from '../metrics/scrape-source.ts'

// The uplink bridge's instruments: the spool, the Kafka shipper and the presence events. Registered in every
// role; without a bridge they stay at zero.

/** What a bridge (a spool and, with Kafka, its shipper) reports when metrics are scraped. */
export interface BridgeStatus {
  readonly unshippedRecords: number
  readonly unshippedBytes: number
  /** Undefined without Kafka. */
  readonly kafkaConnected?: boolean
  /** Age of the oldest record not yet in Kafka, in seconds (0 when caught up). */
  readonly lagSeconds?: number
}

export interface UplinkMetrics {
  readonly spoolRecords: Counter
  readonly spoolBytes: Counter
  readonly spoolWaits: Counter
  readonly uplinksDropped: Counter<'reason'>
  readonly kafkaRecords: Counter
  readonly kafkaBytes: Counter
  readonly kafkaBatches: Counter
  readonly kafkaSendFailures: Counter
  readonly kafkaDeadLetters: Counter
  readonly presenceEvents: Counter
  readonly presenceEventsDropped: Counter
  /** The uplink bridge's status, read on every scrape. */
  readBridgeFrom (read: () => BridgeStatus): void
}

export function registerUplinkMetrics (registry: Registry): UplinkMetrics {
  const registers = [registry]
  const bridge = scrapeSource<BridgeStatus>()
  scrapedGauge(registry, 'pushline_spool_unshipped_records', 'uplinks in the spool not yet in Kafka (all of them without Kafka)', () => bridge.read()?.unshippedRecords)
  scrapedGauge(registry, 'pushline_spool_unshipped_bytes', 'spool bytes of those uplinks (bounded by PUSHLINE_SPOOL_MAX_BYTES)', () => bridge.read()?.unshippedBytes)
  scrapedGauge(registry, 'pushline_kafka_connected', '1 while the last produce to Kafka succeeded', () => kafkaConnected(bridge.read()))
  scrapedGauge(registry, 'pushline_kafka_lag_seconds', 'age of the oldest uplink not yet in Kafka', () => bridge.read()?.lagSeconds)
  return {
    spoolRecords: new Counter({ name: 'pushline_spool_records_total', help: 'uplinks written to the spool', registers }),
    spoolBytes: new Counter({ name: 'pushline_spool_bytes_total', help: 'bytes written to the spool', registers }),
    spoolWaits: new Counter({ name: 'pushline_spool_waits_total', help: 'QoS 1/2 uplinks whose PUBACK waited because the spool was full', registers }),
    uplinksDropped: new Counter({ name: 'pushline_uplinks_dropped_total', help: 'uplinks accepted from a device and then dropped, by reason', labelNames: ['reason'], registers }),
    kafkaRecords: new Counter({ name: 'pushline_kafka_records_total', help: 'uplinks acknowledged by Kafka', registers }),
    kafkaBytes: new Counter({ name: 'pushline_kafka_bytes_total', help: 'payload bytes acknowledged by Kafka', registers }),
    kafkaBatches: new Counter({ name: 'pushline_kafka_batches_total', help: 'produce requests acknowledged by Kafka', registers }),
    kafkaSendFailures: new Counter({ name: 'pushline_kafka_send_failures_total', help: 'produce attempts that failed (the batch is sent again)', registers }),
    kafkaDeadLetters: new Counter({ name: 'pushline_kafka_dead_letters_total', help: 'uplinks Kafka refused for good (too large), kept in the spool directory\'s dead-letter file', registers }),
    presenceEvents: new Counter({ name: 'pushline_presence_events_total', help: 'presence events acknowledged by Kafka', registers }),
    presenceEventsDropped: new Counter({ name: 'pushline_presence_events_dropped_total', help: 'presence events dropped because the queue was full while Kafka was away', registers }),
    readBridgeFrom: bridge.from
  }
}

/** A bridge's Kafka connection as a gauge value: undefined (not set) without Kafka. */
export function kafkaConnected (status: BridgeStatus | undefined): number | undefined {
  return status?.kafkaConnected === undefined ? undefined : Number(status.kafkaConnected)
}
