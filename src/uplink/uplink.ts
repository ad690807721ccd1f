import type { UplinkKind } from '../shared/topics.ts'

/** One device publish on a telemetry or events topic, as the bridge hands it on. */
export interface Uplink {
  /** Unique per uplink, so consumers can drop replays. */
  readonly msgId: string
  readonly deviceId: string
  readonly topic: string
  /** `receipt`: not an uplink but a receipt record that a receipts spool carries in the same frame (src/push/receipt-record.ts). */
  readonly kind: UplinkKind | 'receipt'
  readonly qos: 0 | 1 | 2
  readonly nodeId: string
  readonly receivedAt: number
  readonly traceId: string
  readonly payload: Buffer
}

/** Where uplinks go. `append` resolves once the uplink is durable (on disk or in Kafka): only then may QoS 1 be acknowledged. */
export interface UplinkSink {
  append (uplink: Uplink): Promise<void>
  close (): Promise<void>
}
