import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { FsyncPolicy } from '../config/settings.ts'
import { PushlineError } from '../shared/errors.ts'
import { createLogThrottle } from '../shared/log-throttle.ts'
import { encodeSpoolRecord, FILE_HEADER, segmentFileName } from './spool-format.ts'
import type { RecoveredSpool, Segment, SpoolState } from './spool-state.ts'
import type { Uplink } from './uplink.ts'

// Appends are group-committed: everything queued while a write is in flight goes out in the next single
// write (+ fdatasync with policy `always`), and each append resolves once its record is durable. With
// `maxBytes`, unshipped bytes are bounded: a QoS 1/2 append waits for space (the PUBACK waits with it),
// a QoS 0 append is dropped and counted.

export interface GroupCommitOptions {
  readonly fsync: FsyncPolicy
  readonly segmentBytes: number
  readonly maxBytes?: number
  readonly onFlush?: (records: number, bytes: number) => void
  /** Each write once it is committed: the segment, the file offset it was written at, and its frames. */
  readonly onCommitted?: (segment: Segment, at: number, frames: Buffer) => void
  readonly onDrop?: (uplink: Uplink) => void
  readonly onWait?: (uplink: Uplink) => void
  readonly logger?: Logger
}

export interface GroupCommit {
  /** True while the bound is reached or appends wait for space. */
  readonly full: boolean
  /** QoS 1/2 appends waiting for space. */
  readonly waiting: number
  /** Called once after the next successful group commit (and at close); a caller removes its own on giving up. */
  readonly commitWaiters: Set<() => void>
  append (u: Uplink): Promise<void>
  /** Lets waiting appends in, oldest first, while there is room. */
  admitWaiting (): void
  /** Stops taking appends: rejects the waiting ones, wakes the reader and waits for the write in flight. */
  stop (): Promise<void>
  /** Syncs and closes the segment being written. */
  closeFile (): Promise<void>
}

/** The segment appends go to, added to the recovered ones when there is none yet. */
export function appendSegment (dir: string, recovered: RecoveredSpool): Segment {
  // Appends go to the last segment when it is binary; after an upgrade, to a new binary one after the JSON lines.
  const segments = recovered.segments
  const last = segments[segments.length - 1]
  if (last === undefined || last.format !== 'binary') segments.push({ start: recovered.nextSeq, path: join(dir, segmentFileName(recovered.nextSeq)), format: 'binary', size: 0, deleted: false })
  return segments[segments.length - 1] as Segment
}

interface Pending {
  readonly seq: number
  readonly frame: Buffer
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

interface Waiter {
  readonly uplink: Uplink
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

export async function openGroupCommit (state: SpoolState, opts: GroupCommitOptions): Promise<GroupCommit> {
  const { maxBytes, logger } = opts

  /** Opens a segment for appending; a new binary one gets its header first. */
  async function openForAppend (seg: Segment): Promise<FileHandle> {
    const fh = await open(seg.path, 'a')
    seg.size = (await fh.stat()).size
    if (seg.size === 0 && seg.format === 'binary') {
      await fh.write(FILE_HEADER)
      seg.size = FILE_HEADER.length
      state.totalBytes += FILE_HEADER.length
    }
    return fh
  }

  let file: FileHandle = await openForAppend(state.current)
  let queue: Pending[] = []
  const waiters: Waiter[] = []
  let writing = false
  let idle: (() => void) | undefined
  let dirty = false
  const commitWaiters = new Set<() => void>()
  const dropLog = createLogThrottle(10_000)

  const syncTimer = opts.fsync === 'interval'
    ? setInterval(() => { if (dirty && !writing) { dirty = false; file.datasync().catch(() => {}) } }, 1000)
    : undefined
  syncTimer?.unref()

  /** Starts a segment named after the first record it will hold. */
  async function rotate (firstSeq: number): Promise<void> {
    await file.datasync()
    await file.close()
    const next: Segment = { start: firstSeq, path: join(state.dir, segmentFileName(firstSeq)), format: 'binary', size: 0, deleted: false }
    file = await openForAppend(next)
    state.segments.push(next)
    state.current = next
  }

  async function flush (): Promise<void> {
    writing = true
    while (queue.length > 0) {
      const batch = queue
      queue = []
      const buf = batch.length === 1 ? (batch[0] as Pending).frame : Buffer.concat(batch.map((p) => p.frame))
      try {
        if (state.current.size >= opts.segmentBytes) await rotate((batch[0] as Pending).seq)
        const segment = state.current
        const at = segment.size
        await file.write(buf)
        if (opts.fsync === 'always') await file.datasync()
        else dirty = true
        segment.size += buf.length
        state.totalBytes += buf.length
        opts.onCommitted?.(segment, at, buf)
        opts.onFlush?.(batch.length, buf.length)
        for (const p of batch) p.resolve()
        for (const w of commitWaiters) w()
        commitWaiters.clear()
      } catch (err) {
        // Never acknowledged: the devices send these again. Cut off whatever part of the write reached the file,
        // so that the next write does not glue a good record onto a fragment.
        state.unshippedBytes -= buf.length
        await file.truncate(state.current.size).catch(() => {})
        logger?.error({ event: 'spool_write_failed', records: batch.length, err: (err as Error).message }, 'spool write failed')
        const e = new PushlineError('IOT_ERR_SPOOL', `spool write failed: ${(err as Error).message}`, undefined, { cause: err })
        for (const p of batch) p.reject(e)
      }
    }
    writing = false
    idle?.()
  }

  const isFull = (): boolean => maxBytes !== undefined && (state.unshippedBytes >= maxBytes || waiters.length > 0)

  /** Gives the uplink its sequence number and queues its frame for the next group commit. */
  function admit (u: Uplink, resolve: () => void, reject: (err: Error) => void): void {
    let frame: Buffer
    try {
      frame = encodeSpoolRecord(state.nextSeq, u)
    } catch (err) {
      reject(new PushlineError('IOT_ERR_SPOOL', `uplink not storable: ${(err as Error).message}`, undefined, { cause: err }))
      return
    }
    const seq = state.nextSeq++
    state.unshippedBytes += frame.length
    queue.push({ seq, frame, resolve, reject })
    if (!writing) flush().catch(() => {}) // flush settles every append itself
  }

  return {
    get full () { return isFull() },
    get waiting () { return waiters.length },
    commitWaiters,

    append (u) {
      if (state.closed) return Promise.reject(new PushlineError('IOT_ERR_SPOOL', 'spool is closed'))
      if (!isFull()) return new Promise<void>((resolve, reject) => admit(u, resolve, reject))
      if (u.qos === 0) {
        // QoS 0 has no acknowledgement to hold back: counted, logged (rate-limited), and its append resolves.
        opts.onDrop?.(u)
        dropLog((suppressed) => logger?.warn({ event: 'uplink_dropped', reason: 'spool_full', deviceId: u.deviceId, topic: u.topic, alsoDropped: suppressed, unshippedBytes: state.unshippedBytes, maxBytes }, 'spool full: QoS 0 uplink dropped'))
        return Promise.resolve()
      }
      opts.onWait?.(u)
      return new Promise<void>((resolve, reject) => { waiters.push({ uplink: u, resolve, reject }) })
    },

    admitWaiting () {
      const bound = maxBytes ?? Infinity
      while (waiters.length > 0 && state.unshippedBytes < bound) {
        const w = waiters.shift() as Waiter
        admit(w.uplink, w.resolve, w.reject)
      }
    },

    async stop () {
      if (syncTimer !== undefined) clearInterval(syncTimer)
      // Appends still waiting for space were never acknowledged: the devices send them again.
      for (const w of waiters.splice(0)) w.reject(new PushlineError('IOT_ERR_SPOOL', 'spool is closing'))
      for (const w of commitWaiters) w()
      commitWaiters.clear()
      if (writing) await new Promise<void>((resolve) => { idle = resolve })
    },

    async closeFile () {
      await file.datasync()
      await file.close()
    }
  }
}
