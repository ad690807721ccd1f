import { open, type FileHandle } from 'node:fs/promises'
import type { Logger } from 'pino'
import { decodeRecords, headerBytes, writtenFrames, type SpoolRecord } from './spool-format.ts'
import type { Segment, SpoolState } from './spool-state.ts'

// The one reader of a spool: it tails the committed records from the shipped offset on, in batches for the shipper.
// The files are the source of truth; the writes the group commit has just committed are also handed to the reader
// (`committed`), which takes them from memory, without reading and checking them again, when it has caught up with
// the writer. Behind the writer (after a restart, an outage, or more than `recentBytes` not yet read) it reads the
// files.

/** Complete, committed records in sequence order, as a reader hands them out. */
export interface SpoolBatch {
  readonly records: readonly SpoolRecord[]
  /** Spool bytes of these records (their frames or lines). */
  readonly bytes: number
}

export interface ReadLimits {
  readonly maxRecords: number
  readonly maxBytes: number
}

export interface SpoolReader {
  /** Sequence number from which the next record will be handed out. */
  readonly position: number
  /**
   * Up to `maxRecords` records and about `maxBytes` bytes (always at least one record when one is there),
   * read from the committed part of the spool. With `wait`, waits until at least one record is committed;
   * resolves undefined when the signal aborts or the spool closes. Without `wait`, the batch may be empty.
   */
  read (limits: ReadLimits, opts?: { wait?: boolean, signal?: AbortSignal }): Promise<SpoolBatch | undefined>
  /** The spool was closed: nothing more will be read. */
  readonly closed: boolean
  close (): Promise<void>
}

/** The reader as the spool holds it: it is also told of each committed write. */
export interface TailingSpoolReader extends SpoolReader {
  /** A write the group commit has made durable: `frames` were written to `segment` at file offset `at`. */
  committed (segment: Segment, at: number, frames: Buffer): void
}

export interface SpoolReaderOptions {
  readonly logger?: Logger
  /** Called once after the next group commit; see `GroupCommit.commitWaiters`. */
  readonly commitWaiters: Set<() => void>
  /** Each record handed out, so that it can be released. */
  readonly handedOut: (seq: number, bytes: number) => void
  /** Committed writes kept for the reader at most, in bytes (default 8 MiB); beyond, it reads them from the file. */
  readonly recentBytes?: number
}

/** One committed write, kept until the reader takes it or passes it. */
interface CommittedWrite {
  readonly segment: Segment
  readonly at: number
  readonly frames: Buffer
}

const READ_CHUNK = 1024 * 1024

export function createSpoolReader (state: SpoolState, opts: SpoolReaderOptions): TailingSpoolReader {
  const { logger, commitWaiters } = opts
  const maxRecent = opts.recentBytes ?? 8 * 1024 * 1024
  const segments = state.segments
  let position = state.shippedSeq
  let seg: Segment | undefined
  let fh: FileHandle | undefined
  let offset = 0
  let remainder = Buffer.alloc(0)
  /** Records parsed and not handed out yet from `parsedHead` on, with their spool bytes in `parsedBytes`. */
  let parsed: SpoolRecord[] = []
  let parsedBytes: number[] = []
  let parsedHead = 0
  let reading = false
  /** Sequence number of the last record parsed, so records before the shipped offset are skipped once. */
  let parsedUpTo = position
  /** Committed writes not read yet, oldest first from `recentHead` on, and their bytes. */
  let recent: CommittedWrite[] = []
  let recentHead = 0
  let recentBytes = 0

  const sink = {
    record (record: SpoolRecord, bytes: number) {
      if (record.seq < parsedUpTo) return
      parsed.push(record)
      parsedBytes.push(bytes)
      parsedUpTo = record.seq + 1
    },
    unreadable (bytes: number) {
      logger?.error({ event: 'spool_record_unreadable', file: seg?.path, bytes }, 'unreadable spool record skipped')
    }
  }

  const parseChunk = (chunk: Buffer): void => {
    const buf = remainder.length === 0 ? chunk : Buffer.concat([remainder, chunk])
    // Binary frames are handed out undecoded (the shipper writes Kafka records from their bytes).
    const { consumed } = decodeRecords((seg as Segment).format, buf, sink, (seg as Segment).size - offset, true)
    // Records handed out are views of `buf`: the incomplete rest is copied, not kept as a slice of it.
    remainder = Buffer.from(buf.subarray(consumed))
  }

  const dropRecent = (): void => {
    recentBytes -= (recent[recentHead] as CommittedWrite).frames.length
    recentHead++
    if (recentHead === recent.length) {
      recent = []
      recentHead = 0
    }
  }

  /** The committed write that starts where the reader is, if it is kept; writes the reader has passed are dropped. */
  const recentAt = (s: Segment): Buffer | undefined => {
    while (recentHead < recent.length) {
      const w = recent[recentHead] as CommittedWrite
      if (w.segment === s ? w.at >= offset : w.segment.start > s.start) break
      dropRecent()
    }
    const w = recent[recentHead]
    if (w === undefined || w.segment !== s || w.at !== offset || remainder.length > 0) return undefined
    dropRecent()
    return w.frames
  }

  const openSegment = async (s: Segment): Promise<void> => {
    seg = s
    fh = await open(s.path, 'r')
    offset = headerBytes(s.format)
    remainder = Buffer.alloc(0)
  }

  /** Reads more committed bytes; false when there is nothing more to read now. */
  const fill = async (): Promise<boolean> => {
    if (seg === undefined || seg.deleted) {
      if (fh !== undefined) await fh.close()
      const s = [...segments].reverse().find((s) => s.start <= position) ?? segments[0]
      if (s === undefined) return false
      await openSegment(s)
    }
    const end = (seg as Segment).size
    if (offset < end) {
      const frames = recentAt(seg as Segment)
      if (frames !== undefined) {
        offset += frames.length
        writtenFrames(frames, sink)
        return true
      }
      const length = Math.min(end - offset, READ_CHUNK)
      const chunk = Buffer.allocUnsafe(length)
      const { bytesRead } = await (fh as FileHandle).read(chunk, 0, length, offset)
      offset += bytesRead
      parseChunk(chunk.subarray(0, bytesRead))
      return bytesRead > 0
    }
    if (seg === state.current) return false
    // A finished segment: move to the next one.
    if (remainder.length > 0) {
      logger?.error({ event: 'spool_record_unreadable', file: seg?.path, bytes: remainder.length }, 'incomplete record at the end of a finished segment skipped')
    }
    const next = segments.find((s) => s.start > (seg as Segment).start)
    if (next === undefined) return false
    await (fh as FileHandle).close()
    await openSegment(next)
    return true
  }

  const take = (limits: ReadLimits, records: SpoolRecord[], size: { bytes: number }): boolean => {
    while (parsedHead < parsed.length && records.length < limits.maxRecords) {
      const record = parsed[parsedHead] as SpoolRecord
      const bytes = parsedBytes[parsedHead] as number
      if (records.length > 0 && size.bytes + bytes > limits.maxBytes) return true
      records.push(record)
      size.bytes += bytes
      opts.handedOut(record.seq, bytes)
      position = record.seq + 1
      parsedHead++
    }
    if (parsedHead === parsed.length) {
      parsed = []
      parsedBytes = []
      parsedHead = 0
    }
    return records.length >= limits.maxRecords
  }

  return {
    get position () { return position },

    get closed () { return state.closed },

    committed (segment, at, frames) {
      // Behind the writer: what does not fit is read from the file when the reader gets there.
      if (state.closed || recentBytes + frames.length > maxRecent) return
      recent.push({ segment, at, frames })
      recentBytes += frames.length
    },

    async read (limits, ropts = {}) {
      if (reading) throw new Error('one read at a time')
      reading = true
      try {
        const records: SpoolRecord[] = []
        const size = { bytes: 0 }
        for (;;) {
          if (state.closed || ropts.signal?.aborted === true) return records.length > 0 ? { records, bytes: size.bytes } : undefined
          if (take(limits, records, size)) return { records, bytes: size.bytes }
          if (await fill()) continue
          if (records.length > 0 || ropts.wait !== true) return { records, bytes: size.bytes }
          // Caught up: wait for the next group commit.
          await new Promise<void>((resolve) => {
            const wake = (): void => {
              commitWaiters.delete(wake)
              ropts.signal?.removeEventListener('abort', wake)
              resolve()
            }
            commitWaiters.add(wake)
            ropts.signal?.addEventListener('abort', wake, { once: true })
            if (state.closed || ropts.signal?.aborted === true) wake()
          })
        }
      } finally {
        reading = false
      }
    },

    async close () {
      recent = []
      recentHead = 0
      recentBytes = 0
      if (fh !== undefined) await fh.close().catch(() => {})
      fh = undefined
      seg = undefined
    }
  }
}
