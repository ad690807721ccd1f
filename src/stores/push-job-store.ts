import type { NewHistoryEntry } from './history-store.ts'

// List push jobs kept out of API memory: the ids still to do, the job's body and a cursor live in the store, and
// an API process holds a job by a lease it renews. If the process dies, the lease lapses and any API process
// claims the job and resumes at the cursor. commit() writes a chunk's history entries and receipts and moves the
// cursor in one atomic step, and only if the cursor is where the caller read it: a chunk is written exactly
// once, so no device gets the push twice and none is skipped. Next to the cursor the store keeps `ordered`: how
// far the chunks' delivery orders went out. A worker that resumes a job first sends again the orders of the
// committed ids past `ordered` (their owner may have died between a commit and its orders).
// Implementations: memory-push-job-store.ts (embedded mode), redis-push-job-store.ts; both pass
// test/contract/push-job-store.spec.ts.

export interface PushJobBody {
  readonly data: unknown
  readonly qos: 0 | 1
  readonly expiresAt: number
  /** The push's trace id, carried into each history entry and log line of the job. */
  readonly traceId?: string
}

export interface PushJobChunk {
  /** Position of ids[0] in the job's id list. */
  readonly cursor: number
  readonly ids: string[]
  readonly total: number
  readonly body: PushJobBody
  /** Position up to which delivery orders went out (at most `cursor`). */
  readonly ordered: number
}

export interface PushJobStore {
  create (pushId: string, ids: readonly string[], body: PushJobBody): Promise<void>
  /** Takes a job nobody holds (new, or its holder's lease lapsed by `at`); resolves its push id. */
  claim (owner: string, leaseMs: number, at: number): Promise<string | undefined>
  /** Extends the lease; resolves false when another owner took the job (stop working on it). */
  renew (pushId: string, owner: string, leaseMs: number, at: number): Promise<boolean>
  /** Up to `limit` ids from the cursor; undefined when the job does not exist. */
  next (pushId: string, limit: number): Promise<PushJobChunk | undefined>
  /**
   * If the cursor is still `cursor`: for each candidate id that is a registered device, appends `entry` to its
   * history and opens its receipt (queued, with its message id); for every other candidate and every id of
   * `invalid`, opens a failed receipt ("unknown device"); adds them all to the push's processed count and moves
   * the cursor past them. Resolves each candidate's new message id (null for an unknown device), in order.
   * Resolves undefined and writes nothing when the cursor has moved (someone else committed the chunk).
   */
  commit (pushId: string, cursor: number, candidates: readonly string[], invalid: readonly string[], entry: NewHistoryEntry): Promise<Array<number | null> | undefined>
  /** The delivery orders of the ids before `position` went out; `ordered` only moves forward. */
  markOrdered (pushId: string, position: number): Promise<void>
  /** The job's ids at positions from `from` (inclusive) to `to` (exclusive). */
  range (pushId: string, from: number, to: number): Promise<string[]>
  /** Forgets the job (its push record stays). */
  finish (pushId: string): Promise<void>
}
