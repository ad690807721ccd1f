import type { Logger } from 'pino'
import { createLogThrottle } from '../shared/log-throttle.ts'
import type { FileSpool } from '../uplink/file-spool.ts'
import { toSpoolEntry, type ReceiptRecord } from './receipt-record.ts'

// Where a process writes the records of the receipt transitions it makes: its receipts spool, which a Kafka
// shipper of its own tails to the receipts topic (src/push/open-receipt-stream.ts). A write resolves once the
// records are durable in the spool (group commit, fsync as PUSHLINE_SPOOL_FSYNC says); the transition itself is
// already in the receipt store by then, so a record that cannot be spooled is counted and logged, never thrown at
// the caller whose transition succeeded.

export interface ReceiptStream {
  write (records: readonly ReceiptRecord[]): Promise<void>
}

export interface SpoolReceiptStreamOptions {
  readonly spool: FileSpool
  readonly logger: Logger
  readonly onWritten?: (records: number) => void
  readonly onDropped?: (records: number) => void
}

export function createSpoolReceiptStream (opts: SpoolReceiptStreamOptions): ReceiptStream {
  const dropLog = createLogThrottle(10_000)
  return {
    async write (records) {
      if (records.length === 0) return
      const results = await Promise.allSettled(records.map((r) => opts.spool.append(toSpoolEntry(r))))
      const failed = results.flatMap((res, i) => res.status === 'rejected' ? [{ record: records[i] as ReceiptRecord, err: res.reason as Error }] : [])
      if (failed.length < records.length) opts.onWritten?.(records.length - failed.length)
      if (failed.length === 0) return
      opts.onDropped?.(failed.length)
      const first = failed[0] as { record: ReceiptRecord, err: Error }
      dropLog((suppressed) => opts.logger.error({
        event: 'receipt_record_dropped',
        records: failed.length,
        alsoDropped: suppressed,
        pushId: first.record.pushId,
        deviceId: first.record.deviceId,
        state: first.record.state,
        traceId: first.record.traceId,
        err: first.err.message
      }, 'receipt records not written to the receipts spool: they will not reach Kafka (the receipt store has the transitions)'))
    }
  }
}
