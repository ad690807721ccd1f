import type { Logger } from 'pino'
import type { PushJobStore } from '../stores/push-job-store.ts'
import { mayMove, type ReceiptState, type ReceiptStore } from '../stores/receipt-store.ts'
import type { ReceiptIntent, ReceiptJournal } from './receipt-journal.ts'
import type { ReceiptRecord } from './receipt-record.ts'
import type { ReceiptStream } from './receipt-stream.ts'

// Writes a record to the receipts stream for every receipt transition the store made, around any ReceiptStore (as
// counted-receipt-store.ts counts them): only after the store has made it, and only what it made (a late or repeated
// transition writes nothing). Group and broadcast pushes get one record per device and state the store counted.
// List pushes open their receipts inside the job store's chunk commit, so the job store is wrapped too
// (streamJobReceipts); the memory job store must then get the receipt store without this wrapper, or its receipts
// would be written twice.
// With a journal, each call first writes its intent there and ends it once its records are spooled, so a process
// killed between the store's commit and the spool write gets the records at its next start (recoverReceipts).
// A commit that fails may still have been made: Redis can run a command whose reply the client gave up on (a
// command timeout under load, a connection lost after the command left). The caller gets the error, and its intent
// is checked against the store at once, as at a start, and again with back-off until the store answers; without
// that, the records of such a commit would wait in the journal for the next start (a list chunk is not committed
// again: the job resumes past it).

export interface StreamReceiptsOptions {
  readonly stream: ReceiptStream
  /** The process's node id, in every record. */
  readonly nodeId: string
  readonly journal?: ReceiptJournal
  readonly now?: () => number
  /** Called between the store's commit and the spool write, with the states about to be written (a test seam). */
  readonly afterCommit?: (states: readonly ReceiptState[]) => void
  /** Where the checks of failed commits are logged. */
  readonly logger?: Logger
  /** Back-off between the checks of a failed commit while the store cannot answer (default 1 s doubling to 30 s). */
  readonly checkBackoff?: { readonly initialMs: number, readonly maxMs: number }
}

/** Push trace ids looked up per process; cleared when this many are held (a lookup is one read). */
const TRACE_CACHE = 1000

type RecordItem = { deviceId: string, state: ReceiptState, id?: number | null, at: number }

interface RecordWriter {
  write (pushId: string, items: readonly RecordItem[]): Promise<void>
  /** Runs `commit` between the intent's begin and end; the intent stays open if the commit or the write fails. */
  journaled<T> (intent: ReceiptIntent, commit: () => Promise<T>, records: (result: T) => readonly RecordItem[], traceId?: string | null): Promise<T>
}

function recordWriter (store: ReceiptStore, opts: StreamReceiptsOptions): RecordWriter {
  const { stream, nodeId, journal } = opts
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

  async function write (pushId: string, items: readonly RecordItem[], traceId?: string | null): Promise<void> {
    if (items.length === 0) return
    const trace = traceId === undefined ? await traceOf(pushId) : traceId
    await stream.write(items.map((r): ReceiptRecord => ({ pushId, deviceId: r.deviceId, state: r.state, id: r.id ?? null, at: r.at, nodeId, traceId: trace })))
  }

  /** A commit failed, maybe after the store made it: writes the records of what the store shows (at least once). */
  function checkFailedCommit (id: number | undefined, intent: ReceiptIntent, err: Error): void {
    const backoff = opts.checkBackoff ?? { initialMs: 1000, maxMs: 30_000 }
    let delay = backoff.initialMs
    let attempts = 0
    const attempt = (): void => {
      attempts++
      recovered(store, intent).then(async (items) => {
        await write(intent.pushId, items)
        if (id !== undefined) journal?.end(id)
        opts.logger?.warn({ event: 'receipt_commit_checked', kind: intent.kind, pushId: intent.pushId, records: items.length, attempts, err: err.message },
          'a receipt commit failed: its records are written for what the store shows it made')
      }).catch(() => {
        // The store cannot answer yet (or the write failed: written again, at least once); the intent stays open,
        // so a stop leaves it to the next start.
        setTimeout(attempt, delay).unref()
        delay = Math.min(delay * 2, backoff.maxMs)
      })
    }
    attempt()
  }

  return {
    write,
    async journaled (intent, commit, records, traceId) {
      const id = await journal?.begin(intent)
      let result: Awaited<ReturnType<typeof commit>>
      try {
        result = await commit()
      } catch (err) {
        checkFailedCommit(id, intent, err as Error)
        throw err
      }
      const items = records(result)
      if (items.length > 0) opts.afterCommit?.(items.map((i) => i.state))
      await write(intent.pushId, items, traceId)
      if (id !== undefined) journal?.end(id)
      return result
    }
  }
}

export function streamReceipts (store: ReceiptStore, opts: StreamReceiptsOptions): ReceiptStore {
  const now = opts.now ?? Date.now
  const { journaled } = recordWriter(store, opts)

  return {
    ...store,
    async open (pushId, receipts, at) {
      await journaled({ kind: 'open', pushId, deviceIds: receipts.map((r) => r.deviceId), at }, () => store.open(pushId, receipts, at), () => receipts.map((r) => ({ ...r, at })))
    },
    async transition (pushId, deviceId, to, at, reason) {
      return await journaled({ kind: 'transition', pushId, deviceId, to, at }, () => store.transition(pushId, deviceId, to, at, reason), (moved) => moved === undefined ? [] : [moved])
    },
    async countDeliveries (pushId, sent, got) {
      const at = now()
      return await journaled({ kind: 'count', pushId, sent, got, at }, () => store.countDeliveries(pushId, sent, got), (added) => [
        ...added.sentIds.map((deviceId) => ({ deviceId, state: 'sent' as const, at })),
        ...added.deliveredIds.map((deviceId) => ({ deviceId, state: 'delivered' as const, at }))
      ])
    },
    async countAcks (pushId, deviceIds) {
      const at = now()
      return await journaled({ kind: 'acks', pushId, deviceIds, at }, () => store.countAcks(pushId, deviceIds), (added) => added.map((deviceId) => ({ deviceId, state: 'acked' as const, at })))
    },
    async sweepExpired (pushId, limit, at) {
      return await journaled({ kind: 'sweep', pushId, at }, () => store.sweepExpired(pushId, limit, at), (swept) => swept.expired)
    }
  }
}

/** List pushes: the receipts a chunk commit opened (queued with the message id, or failed) as records. */
export function streamJobReceipts (jobs: PushJobStore, store: ReceiptStore, opts: StreamReceiptsOptions): PushJobStore {
  const { journaled } = recordWriter(store, opts)
  return {
    ...jobs,
    async commit (pushId, cursor, candidates, invalid, entry) {
      const at = entry.sentAt
      return await journaled({ kind: 'open', pushId, deviceIds: [...candidates, ...invalid], at }, () => jobs.commit(pushId, cursor, candidates, invalid, entry), (ids) => ids === undefined
        ? []
        : [
            ...candidates.map((deviceId, i) => {
              const id = ids[i] ?? null
              return id === null ? { deviceId, state: 'failed' as const, id: null, at } : { deviceId, state: 'queued' as const, id, at }
            }),
            ...invalid.map((deviceId) => ({ deviceId, state: 'failed' as const, id: null, at }))
          ], entry.traceId ?? null)
    }
  }
}

/**
 * The intents a killed process left open: each is checked against the store, and the records of the moves that
 * happened are written now (again, if they had been spooled before the kill: at least once). A receipt that moved
 * further since gets the intended state's record too when the move could lead there (the furthest state decides,
 * docs/receipts-stream.md). Resolves how many records it wrote; an intent whose check fails stays open.
 */
export async function recoverReceipts (store: ReceiptStore, opts: StreamReceiptsOptions & { readonly journal: ReceiptJournal }, leftOpen: ReadonlyArray<{ id: number, intent: ReceiptIntent }>): Promise<number> {
  const { write } = recordWriter(store, opts)
  let written = 0
  for (const { id, intent } of leftOpen) {
    const items = await recovered(store, intent)
    await write(intent.pushId, items)
    opts.journal.end(id)
    written += items.length
  }
  return written
}

async function recovered (store: ReceiptStore, intent: ReceiptIntent): Promise<RecordItem[]> {
  const { pushId, at } = intent
  switch (intent.kind) {
    case 'open': {
      const items: RecordItem[] = []
      for (const deviceId of intent.deviceIds) {
        const r = await store.getReceipt(pushId, deviceId)
        // Opened queued or failed; one that moved on since (a later `at`) was queued, as failed is final.
        if (r !== undefined) items.push({ deviceId, state: r.at === Math.round(at) ? r.state : 'queued', id: r.id ?? null, at })
      }
      return items
    }
    case 'transition': {
      const r = await store.getReceipt(pushId, intent.deviceId)
      return r !== undefined && (r.state === intent.to || mayMove(intent.to, r.state)) ? [{ deviceId: intent.deviceId, state: intent.to, id: r.id ?? null, at }] : []
    }
    case 'count': {
      const ids = [...new Set([...intent.sent, ...intent.got])]
      const states = await store.countedStates(pushId, ids)
      const counted = new Map(ids.map((d, i) => [d, states[i]]))
      return [
        ...intent.sent.filter((d) => counted.get(d) === 'sent').map((deviceId) => ({ deviceId, state: 'sent' as const, at })),
        ...intent.got.filter((d) => counted.get(d) === 'delivered').map((deviceId) => ({ deviceId, state: 'delivered' as const, at }))
      ]
    }
    case 'acks': {
      const states = await store.countedStates(pushId, intent.deviceIds)
      return intent.deviceIds.filter((_, i) => states[i] === 'acked').map((deviceId) => ({ deviceId, state: 'acked' as const, at }))
    }
    case 'sweep': {
      const items: RecordItem[] = []
      let after: string | undefined
      do {
        const page = await store.list(pushId, after, 1000)
        for (const r of page.receipts) if (r.state === 'expired' && r.at === at) items.push({ deviceId: r.deviceId, state: 'expired', id: r.id ?? null, at })
        after = page.next
      } while (after !== undefined)
      return items
    }
  }
}
