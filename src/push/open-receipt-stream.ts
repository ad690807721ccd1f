import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config/load-config.ts'
import { createKafka } from '../kafka/kafka-client.ts'
import { shipperSettings } from '../kafka/shipper-settings.ts'
import { openFileSpool } from '../uplink/file-spool.ts'
import { createKafkaShipper, type ShipperStatus } from '../uplink/kafka-shipper.ts'
import { openReceiptJournal, type OpenedReceiptJournal } from './receipt-journal.ts'
import type { BridgeStatus } from '../uplink/uplink-metrics.ts'
import type { PushMetrics } from './push-metrics.ts'
import { receiptKafkaMessage } from './receipt-record.ts'
import { createSpoolReceiptStream, type ReceiptStream } from './receipt-stream.ts'

// Opens the receipts stream of one process (any role: the API makes queued, failed and expired records, broker
// nodes sent, delivered and acked): a FileSpool of its own in <data dir>/receipts and, with Kafka, a shipper of
// its own that tails it to the receipts topic. The same parts and the same guarantees as the uplink bridge: a
// record is durable in the spool before the write resolves, shipped at least once, kept while Kafka is away.
// Without Kafka the records stay in the spool (shipped once Kafka is configured). The spool has no byte bound:
// holding records back would hold back the transitions that make them.

/** How long a stop keeps shipping spooled records (the rest ships after the next start). */
const SHIPPER_DRAIN_MS = 2000

export interface ReceiptStreamHandle {
  readonly stream: ReceiptStream
  /** The intents journal (receipt-journal.ts) and what a killed run left open in it. */
  readonly journal: OpenedReceiptJournal
  readonly dir: string
  status (): BridgeStatus & { readonly shipper: ShipperStatus | undefined }
}

export interface OpenReceiptStreamOptions {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Pick<PushMetrics, 'receiptRecords' | 'receiptRecordsDropped' | 'readReceiptStreamFrom'>
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
}

export async function openReceiptStream (opts: OpenReceiptStreamOptions): Promise<ReceiptStreamHandle> {
  const { config, logger, metrics } = opts
  const dir = join(resolve(config.dataDir), 'receipts')
  const spool = await openFileSpool({
    dir,
    fsync: config.spoolFsync,
    segmentBytes: config.spoolSegmentBytes,
    logger: logger.child({ component: 'receipts-spool' })
  })
  opts.onClose('receipts spool', () => spool.close())
  // A SIGKILL keeps what was written; only a machine crash needs the sync, as for the spool.
  const journal = await openReceiptJournal({ path: join(dir, 'intents.jsonl'), fsync: config.spoolFsync === 'always' })
  // Closes before the spool (registered after it).
  opts.onClose('receipts journal', () => journal.journal.close())

  const kafkaBrokers = config.kafkaBrokers
  const shipper = kafkaBrokers === undefined
    ? undefined
    : createKafkaShipper({
      kafka: createKafka({ brokers: kafkaBrokers, clientId: `pushline-${config.nodeId}-receipts`, logger, retry: { retries: 2, maxRetryTime: 5000 } }),
      spool,
      logger: logger.child({ component: 'receipts-shipper' }),
      // The shipper's own name for its destination; here it is the receipts topic.
      telemetryTopic: config.kafkaReceiptsTopic,
      toMessage: receiptKafkaMessage,
      topics: [{ topic: config.kafkaReceiptsTopic, numPartitions: config.kafkaReceiptsPartitions, replicationFactor: config.kafkaReplicationFactor }],
      ...shipperSettings(config),
      deadLetterPath: join(dir, 'dead-letter.jsonl')
    })
  if (shipper !== undefined) {
    shipper.start()
    // Closes before the spool (registered after it).
    opts.onClose('receipts shipper', () => shipper.close(SHIPPER_DRAIN_MS))
  }

  const status = (): ReturnType<ReceiptStreamHandle['status']> => {
    const k = shipper?.status()
    return { unshippedRecords: spool.unshippedRecords, unshippedBytes: spool.unshippedBytes, kafkaConnected: k?.connected, lagSeconds: k?.lagSeconds, shipper: k }
  }
  metrics.readReceiptStreamFrom(status)
  return {
    stream: createSpoolReceiptStream({
      spool,
      logger,
      onWritten: (n) => metrics.receiptRecords.inc(n),
      onDropped: (n) => metrics.receiptRecordsDropped.inc(n)
    }),
    journal,
    dir,
    status
  }
}
