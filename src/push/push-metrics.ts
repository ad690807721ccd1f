import { Counter, type Registry } from 'prom-client'
import { scrapeSource, scrapedGauge } from '../metrics/scrape-source.ts'
import { kafkaConnected, type BridgeStatus } from '../uplink/uplink-metrics.ts'

// The push parts' instruments: downlinks the agent writes, receipt transitions, and the receipts stream.

export interface PushMetrics {
  /** Downlinks written to devices' connections, by kind (device, broadcast) and the QoS they went out with. */
  readonly downlinks: Counter<'kind' | 'qos'>
  /** QoS 1 downlinks the device acknowledged with PUBACK, by kind. */
  readonly downlinksDelivered: Counter<'kind'>
  /** Receipt transitions, by the state entered (count-only pushes: the counts they add). */
  readonly receipts: Counter<'state'>
  /** Records of receipt transitions written to the receipts spool, and those that could not be (logged). */
  readonly receiptRecords: Counter
  readonly receiptRecordsDropped: Counter
  /** The receipts stream's status (its spool and shipper), read on every scrape. */
  readReceiptStreamFrom (read: () => BridgeStatus): void
}

export function registerPushMetrics (registry: Registry): PushMetrics {
  const registers = [registry]
  const stream = scrapeSource<BridgeStatus>()
  scrapedGauge(registry, 'pushline_receipt_records_unshipped', 'receipt records in the receipts spool not yet in Kafka (all of them without Kafka)', () => stream.read()?.unshippedRecords)
  scrapedGauge(registry, 'pushline_receipt_stream_kafka_connected', '1 while the last produce of receipt records to Kafka succeeded', () => kafkaConnected(stream.read()),
    // The API thread of role all has a receipts stream of its own (src/api-thread/): connected only if both are.
    'min')
  return {
    downlinks: new Counter({ name: 'pushline_downlinks_total', help: 'downlinks written to devices\' connections, by kind (device, broadcast) and QoS', labelNames: ['kind', 'qos'], registers }),
    downlinksDelivered: new Counter({ name: 'pushline_downlinks_delivered_total', help: 'QoS 1 downlinks acknowledged by the device (PUBACK), by kind', labelNames: ['kind'], registers }),
    receipts: new Counter({ name: 'pushline_receipts_total', help: 'receipt transitions, by the state entered', labelNames: ['state'], registers }),
    receiptRecords: new Counter({ name: 'pushline_receipt_records_total', help: 'records of receipt transitions written to the receipts spool (on their way to Kafka)', registers }),
    receiptRecordsDropped: new Counter({ name: 'pushline_receipt_records_dropped_total', help: 'records of receipt transitions that could not be written to the receipts spool (logged; the transition itself is kept)', registers }),
    readReceiptStreamFrom: stream.from
  }
}
