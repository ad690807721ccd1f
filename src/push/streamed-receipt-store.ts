import type { PushJobStore } from '../stores/push-job-store.ts'
import type { ReceiptState, ReceiptStore } from '../stores/receipt-store.ts'
import type { ReceiptRecord } from './receipt-record.ts'
import type { ReceiptStream } from './receipt-stream.ts'

// Writes a record to the receipts stream for every receipt transition the store made, around any ReceiptStore (as
// counted-receipt-store.ts counts them): only after the store has made it, and only what it made (a late or repeated
// transition writes nothing). Group and broadcast pushes get one record per device and state the store counted.
// List pushes open their receipts inside the job store's chunk commit, so the job store is wrapped too
// (streamJobReceipts); the memory job store must then get the receipt store without this wrapper, or its receipts
// would be written twice.

export interface StreamReceiptsOptions {
  readonly stream: ReceiptStream
  /** The process's node id, in every record. */
  readonly nodeId: string
  readonly now?: () => number
}

/** Push trace ids looked up per process; cleared when this many are held (a lookup is one read). */
const TRACE_CACHE = 1000

export function streamReceipts (store: ReceiptStore, opts: StreamReceiptsOptions): ReceiptStore {
  const { stream, nodeId } = opts
  const now = opts.now ?? Date.now
  const traces = new Map<string, Promise<string | null>>()

  /** The push's trace id, from its record (once per push and process). */
  function traceOf (pushId: string): Promise<string | null> {
    let t = traces.get(pushId)
    if (t === undefined) {
      if (traces.size >= TRACE_CACHE) traces.clear()
      t = store.getPush(pushId).then((p) => p?.traceId ?? null, () => {
        // Tried again for the next record of this push.
        traces.delete(pushId)
        return null
      })
      traces.set(pushId, t)
    }
    return t
  }

  async function write (pushId: string, items: ReadonlyArray<{ deviceId: string, state: ReceiptState, id?: number, at: number }>): Promise<void> {
    if (items.length === 0) return
    const traceId = await traceOf(pushId)
    await stream.write(items.map((r): ReceiptRecord => ({ pushId, deviceId: r.deviceId, state: r.state, id: r.id ?? null, at: r.at, nodeId, traceId })))
  }

  return {
    ...store,
    async open (pushId, receipts, at) {
      await store.open(pushId, receipts, at)
      await write(pushId, receipts.map((r) => ({ ...r, at })))
    },
    async transition (pushId, deviceId, to, at, reason) {
      const moved = await store.transition(pushId, deviceId, to, at, reason)
      if (moved !== undefined) await write(pushId, [moved])
      return moved
    },
    async countDeliveries (pushId, sent, got) {
      const added = await store.countDeliveries(pushId, sent, got)
      const at = now()
      await write(pushId, [
        ...added.sentIds.map((deviceId) => ({ deviceId, state: 'sent' as const, at })),
        ...added.deliveredIds.map((deviceId) => ({ deviceId, state: 'delivered' as const, at }))
      ])
      return added
    },
    async countAcks (pushId, deviceIds) {
      const added = await store.countAcks(pushId, deviceIds)
      const at = now()
      await write(pushId, added.map((deviceId) => ({ deviceId, state: 'acked' as const, at })))
      return added
    },
    async sweepExpired (pushId, limit, at) {
      const swept = await store.sweepExpired(pushId, limit, at)
      await write(pushId, swept.expired)
      return swept
    }
  }
}

/** List pushes: the receipts a chunk commit opened (queued with the message id, or failed) as records. */
export function streamJobReceipts (jobs: PushJobStore, opts: StreamReceiptsOptions): PushJobStore {
  const { stream, nodeId } = opts
  return {
    ...jobs,
    async commit (pushId, cursor, candidates, invalid, entry) {
      const ids = await jobs.commit(pushId, cursor, candidates, invalid, entry)
      if (ids === undefined) return ids
      const at = entry.sentAt
      const traceId = entry.traceId ?? null
      const record = (deviceId: string, state: ReceiptState, id: number | null): ReceiptRecord => ({ pushId, deviceId, state, id, at, nodeId, traceId })
      await stream.write([
        ...candidates.map((deviceId, i) => {
          const id = ids[i] ?? null
          return id === null ? record(deviceId, 'failed', null) : record(deviceId, 'queued', id)
        }),
        ...invalid.map((deviceId) => record(deviceId, 'failed', null))
      ])
      return ids
    }
  }
}
