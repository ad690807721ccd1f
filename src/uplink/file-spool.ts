import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Logger } from 'pino'
import type { FsyncPolicy } from '../config/settings.ts'
import { PushlineError } from '../shared/errors.ts'
import { createLogThrottle } from '../shared/log-throttle.ts'
import {
  bytesBefore, decodeRecords, encodeSpoolRecord, FILE_HEADER, hasFileHeader, headerBytes, scanSegment, SEGMENT_FILE,
  segmentFileName, segmentFormat, type SegmentFormat, type SpoolRecord
} from './spool-format.ts'
import type { Uplink, UplinkSink } from './uplink.ts'

export type { SpoolRecord } from './spool-format.ts'

// An append-only, segmented log of uplinks on local disk: one length-prefixed, CRC-checked binary frame per uplink
// (src/uplink/spool-format.ts; segments of the older JSON-lines format are still read and shipped).
// Appends are group-committed: everything queued while a write is in flight goes out in the next single
// write (+ fdatasync with policy `always`), and each append resolves once its record is durable.
//
// It is also the write-ahead log of the Kafka bridge (after EMQX's replayq): one reader tails the committed
// records from the shipped offset on, `release(seq)` marks records shipped, persists that offset
// (`shipped.json`: write tmp, fsync, rename) and deletes segments whose records are all shipped. With
// `maxBytes`, unshipped bytes are bounded: a QoS 1/2 append waits for space (the PUBACK waits with it),
// a QoS 0 append is dropped and counted.

export interface FileSpoolOptions {
  readonly dir: string
  readonly fsync: FsyncPolicy
  /** A new segment file starts when the current one reaches this size. */
  readonly segmentBytes?: number
  readonly onFlush?: (records: number, bytes: number) => void
  /**
   * Bound on unshipped bytes (records appended and not yet released). Above it, a QoS 1/2 append waits
   * until `release` frees space, and a QoS 0 append is dropped. Undefined: no bound (the spool is the sink).
   */
  readonly maxBytes?: number
  /** A QoS 0 uplink was dropped because the spool was full. */
  readonly onDrop?: (uplink: Uplink) => void
  /** A QoS 1/2 uplink has to wait for space. */
  readonly onWait?: (uplink: Uplink) => void
  /** Drops (rate-limited), unreadable records and a damaged offset file are logged here. */
  readonly logger?: Logger
}

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
  close (): Promise<void>
}

export interface FileSpool extends UplinkSink {
  /** Sequence number the next uplink will get. */
  readonly nextSeq: number
  /** Bytes written to disk and not yet removed. */
  readonly bytes: number
  /** First sequence number not yet shipped; records before it are released. */
  readonly shippedSeq: number
  /** Records appended and not yet released. */
  readonly unshippedRecords: number
  /** Spool bytes of those records (the quantity `maxBytes` bounds). */
  readonly unshippedBytes: number
  /** True while the bound is reached or appends wait for space: QoS 0 uplinks are dropped meanwhile. */
  readonly full: boolean
  /** QoS 1/2 appends waiting for space. */
  readonly waiting: number
  /** The one reader, positioned at the shipped offset (a second call returns the same reader). */
  reader (): SpoolReader
  /**
   * Marks every record up to and including `uptoSeq` shipped: frees their bytes at once (waiting appends go
   * ahead), then persists the offset and deletes whole segments that hold only shipped records. Resolves once
   * the offset is durable. Only records the reader has handed out can be released.
   */
  release (uptoSeq: number): Promise<void>
}

export const SHIPPED_OFFSET_FILE = 'shipped.json'
const READ_CHUNK = 1024 * 1024

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

interface Segment {
  readonly start: number
  readonly path: string
  readonly format: SegmentFormat
  /** Committed size: bytes written (and synced under policy `always`) so far. */
  size: number
  deleted: boolean
}

export async function listSegments (dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw err
  })
  return names.filter((n) => SEGMENT_FILE.test(n)).sort().map((n) => join(dir, n))
}

const startOf = (path: string): number => Number((SEGMENT_FILE.exec(basename(path)) as RegExpExecArray)[1])

/** Every complete record in the spool, oldest first (shipped or not), of either format. */
export async function * readSpool (dir: string): AsyncGenerator<SpoolRecord> {
  for (const file of await listSegments(dir)) {
    const format = segmentFormat(file)
    const records: SpoolRecord[] = []
    // A torn last record from a crash mid-write was never acknowledged: it is not a record.
    decodeRecords(format, (await readFile(file)).subarray(headerBytes(format)), { record: (r) => records.push(r), unreadable: () => {} })
    yield * records
  }
}

/** The persisted shipped offset of a spool directory, or undefined when nothing was shipped yet. */
export async function readShippedOffset (dir: string): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, SHIPPED_OFFSET_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const seq = (JSON.parse(text) as { shippedSeq?: unknown }).shippedSeq
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new Error(`${SHIPPED_OFFSET_FILE} holds no valid shippedSeq`)
  return seq
}

/** Drops a torn tail left by a crash and returns the sequence number after the last complete record. */
async function recoverTail (file: string, format: SegmentFormat): Promise<number | undefined> {
  const buf = await readFile(file)
  const { end, lastSeq } = scanSegment(format, buf)
  if (end < buf.length) {
    const fh = await open(file, 'r+')
    try {
      await fh.truncate(end)
    } finally {
      await fh.close()
    }
  }
  return lastSeq === undefined ? undefined : lastSeq + 1
}

/**
 * Checks the header of a binary segment. A file shorter than the header is a segment a crash left before its
 * header was written: it holds nothing and is emptied. A different header is a format this version does not know.
 */
async function checkHeader (path: string): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    const head = Buffer.alloc(FILE_HEADER.length)
    const { bytesRead } = await fh.read(head, 0, head.length, 0)
    if (bytesRead < head.length) {
      await fh.truncate(0)
      return
    }
    if (!hasFileHeader(head)) {
      throw new PushlineError('IOT_ERR_SPOOL', `spool segment ${path} has an unknown format (header ${head.toString('hex')}); move it out of the spool directory to start`)
    }
  } finally {
    await fh.close()
  }
}

async function syncDir (dir: string): Promise<void> {
  const dh = await open(dir, 'r')
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

export async function openFileSpool (opts: FileSpoolOptions): Promise<FileSpool> {
  const segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024
  const maxBytes = opts.maxBytes
  const logger = opts.logger
  await mkdir(opts.dir, { recursive: true })

  let nextSeq = 0
  let totalBytes = 0
  const segments: Segment[] = []
  const paths = await listSegments(opts.dir)
  for (const path of paths) if (segmentFormat(path) === 'binary') await checkHeader(path)
  const lastPath = paths[paths.length - 1]
  if (lastPath !== undefined) {
    const tailSeq = await recoverTail(lastPath, segmentFormat(lastPath))
    nextSeq = tailSeq ?? startOf(lastPath)
  }
  for (const path of paths) {
    const format = segmentFormat(path)
    const size = (await stat(path)).size
    if (size <= headerBytes(format) && path === lastPath && format === 'jsonl') {
      // An empty segment of the old format: appends go to a binary segment with the same name, so it goes.
      await unlink(path)
      continue
    }
    segments.push({ start: startOf(path), path, format, size, deleted: false })
    totalBytes += size
  }

  // The shipped offset: records before it are in Kafka. A damaged file means "ship everything again".
  let shippedSeq: number
  try {
    shippedSeq = (await readShippedOffset(opts.dir)) ?? segments[0]?.start ?? nextSeq
  } catch (err) {
    logger?.error({ event: 'spool_offset_unreadable', err: (err as Error).message }, 'shipped offset unreadable: the whole spool will be shipped again')
    shippedSeq = segments[0]?.start ?? nextSeq
  }
  // Segments removed by hand: start at what is there. Spool files removed but the offset kept: number on from it.
  if (segments[0] !== undefined && shippedSeq < segments[0].start) shippedSeq = segments[0].start
  if (shippedSeq > nextSeq) nextSeq = shippedSeq
  let persistedSeq = shippedSeq

  // Segments shipped in full whose deletion a crash interrupted.
  while (segments.length > 1 && (segments[1] as Segment).start <= shippedSeq) {
    const s = segments.shift() as Segment
    await unlink(s.path)
    totalBytes -= s.size
  }
  // A binary segment a crash left before its header was written is empty (size 0).
  let unshippedBytes = segments.reduce((n, s) => n + Math.max(0, s.size - headerBytes(s.format)), 0)
  const first = segments[0]
  if (first !== undefined && first.start < shippedSeq) unshippedBytes -= bytesBefore(first.format, await readFile(first.path), shippedSeq)

  /** Opens a segment for appending; a new binary one gets its header first. */
  async function openForAppend (seg: Segment): Promise<FileHandle> {
    const fh = await open(seg.path, 'a')
    seg.size = (await fh.stat()).size
    if (seg.size === 0 && seg.format === 'binary') {
      await fh.write(FILE_HEADER)
      seg.size = FILE_HEADER.length
      totalBytes += FILE_HEADER.length
    }
    return fh
  }

  // Appends go to the last segment when it is binary; after an upgrade, to a new binary one after the JSON lines.
  const last = segments[segments.length - 1]
  if (last === undefined || last.format !== 'binary') segments.push({ start: nextSeq, path: join(opts.dir, segmentFileName(nextSeq)), format: 'binary', size: 0, deleted: false })
  let current = segments[segments.length - 1] as Segment
  let file: FileHandle = await openForAppend(current)

  let queue: Pending[] = []
  const waiters: Waiter[] = []
  let writing = false
  let closed = false
  let idle: (() => void) | undefined
  let dirty = false
  const flushWaiters = new Set<() => void>()
  // Records the reader handed out and not yet released: their sequence numbers and line bytes.
  let handedSeqs: number[] = []
  let handedBytes: number[] = []
  let readerInstance: SpoolReader | undefined
  let persistLoop: Promise<void> | undefined
  const dropLog = createLogThrottle(10_000)

  const syncTimer = opts.fsync === 'interval'
    ? setInterval(() => { if (dirty && !writing) { dirty = false; file.datasync().catch(() => {}) } }, 1000)
    : undefined
  syncTimer?.unref()

  /** Starts a segment named after the first record it will hold. */
  async function rotate (firstSeq: number): Promise<void> {
    await file.datasync()
    await file.close()
    const next: Segment = { start: firstSeq, path: join(opts.dir, segmentFileName(firstSeq)), format: 'binary', size: 0, deleted: false }
    file = await openForAppend(next)
    segments.push(next)
    current = next
  }

  async function flush (): Promise<void> {
    writing = true
    while (queue.length > 0) {
      const batch = queue
      queue = []
      const buf = batch.length === 1 ? (batch[0] as Pending).frame : Buffer.concat(batch.map((p) => p.frame))
      try {
        if (current.size >= segmentBytes) await rotate((batch[0] as Pending).seq)
        await file.write(buf)
        if (opts.fsync === 'always') await file.datasync()
        else dirty = true
        current.size += buf.length
        totalBytes += buf.length
        opts.onFlush?.(batch.length, buf.length)
        for (const p of batch) p.resolve()
        for (const w of flushWaiters) w()
        flushWaiters.clear()
      } catch (err) {
        // Never acknowledged: the devices send these again. Cut off whatever part of the write reached the file,
        // so that the next write does not glue a good record onto a fragment.
        unshippedBytes -= buf.length
        await file.truncate(current.size).catch(() => {})
        logger?.error({ event: 'spool_write_failed', records: batch.length, err: (err as Error).message }, 'spool write failed')
        const e = new PushlineError('IOT_ERR_SPOOL', `spool write failed: ${(err as Error).message}`, undefined, { cause: err })
        for (const p of batch) p.reject(e)
      }
    }
    writing = false
    idle?.()
  }

  const isFull = (): boolean => maxBytes !== undefined && (unshippedBytes >= maxBytes || waiters.length > 0)

  /** Gives the uplink its sequence number and queues its frame for the next group commit. */
  function admit (u: Uplink, resolve: () => void, reject: (err: Error) => void): void {
    let frame: Buffer
    try {
      frame = encodeSpoolRecord(nextSeq, u)
    } catch (err) {
      reject(new PushlineError('IOT_ERR_SPOOL', `uplink not storable: ${(err as Error).message}`, undefined, { cause: err }))
      return
    }
    const seq = nextSeq++
    unshippedBytes += frame.length
    queue.push({ seq, frame, resolve, reject })
    if (!writing) flush().catch(() => {}) // flush settles every append itself
  }

  /** Lets waiting appends in, oldest first, while there is room. */
  function admitWaiting (): void {
    const bound = maxBytes ?? Infinity
    while (waiters.length > 0 && unshippedBytes < bound) {
      const w = waiters.shift() as Waiter
      admit(w.uplink, w.resolve, w.reject)
    }
  }

  async function writeOffset (seq: number): Promise<void> {
    const target = join(opts.dir, SHIPPED_OFFSET_FILE)
    const tmp = `${target}.tmp`
    const fh = await open(tmp, 'w')
    try {
      await fh.writeFile(JSON.stringify({ shippedSeq: seq }) + '\n')
      if (opts.fsync !== 'never') await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, target)
    if (opts.fsync !== 'never') await syncDir(opts.dir)
  }

  /** Deletes segments whose records are all at or below the persisted offset; never the one being written. */
  async function deleteShippedSegments (): Promise<void> {
    while (segments.length > 1 && segments[0] !== current && (segments[1] as Segment).start <= persistedSeq) {
      const s = segments.shift() as Segment
      s.deleted = true
      totalBytes -= s.size
      await unlink(s.path).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
    }
  }

  function persistOffset (): Promise<void> {
    persistLoop ??= (async () => {
      try {
        while (persistedSeq < shippedSeq) {
          const seq = shippedSeq
          await writeOffset(seq)
          persistedSeq = seq
          await deleteShippedSegments()
        }
      } finally {
        persistLoop = undefined
      }
    })()
    return persistLoop
  }

  function createReader (): SpoolReader {
    let position = shippedSeq
    let seg: Segment | undefined
    let fh: FileHandle | undefined
    let offset = 0
    let remainder = Buffer.alloc(0)
    let parsed: Array<{ record: SpoolRecord, bytes: number }> = []
    let parsedHead = 0
    let reading = false
    /** Sequence number of the last record parsed, so records before the shipped offset are skipped once. */
    let parsedUpTo = position

    const sink = {
      record (record: SpoolRecord, bytes: number) {
        if (record.seq < parsedUpTo) return
        parsed.push({ record, bytes })
        parsedUpTo = record.seq + 1
      },
      unreadable (bytes: number) {
        logger?.error({ event: 'spool_record_unreadable', file: seg?.path, bytes }, 'unreadable spool record skipped')
      }
    }

    const parseChunk = (chunk: Buffer): void => {
      const buf = remainder.length === 0 ? chunk : Buffer.concat([remainder, chunk])
      const { consumed } = decodeRecords((seg as Segment).format, buf, sink, (seg as Segment).size - offset)
      // Payloads handed out are slices of `buf`: the incomplete rest is copied, not kept as a slice of it.
      remainder = Buffer.from(buf.subarray(consumed))
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
        const length = Math.min(end - offset, READ_CHUNK)
        const chunk = Buffer.allocUnsafe(length)
        const { bytesRead } = await (fh as FileHandle).read(chunk, 0, length, offset)
        offset += bytesRead
        parseChunk(chunk.subarray(0, bytesRead))
        return bytesRead > 0
      }
      if (seg === current) return false
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
        const next = parsed[parsedHead] as { record: SpoolRecord, bytes: number }
        if (records.length > 0 && size.bytes + next.bytes > limits.maxBytes) return true
        records.push(next.record)
        size.bytes += next.bytes
        handedSeqs.push(next.record.seq)
        handedBytes.push(next.bytes)
        position = next.record.seq + 1
        parsedHead++
      }
      if (parsedHead === parsed.length) {
        parsed = []
        parsedHead = 0
      }
      return records.length >= limits.maxRecords
    }

    return {
      get position () { return position },

      async read (limits, ropts = {}) {
        if (reading) throw new Error('one read at a time')
        reading = true
        try {
          const records: SpoolRecord[] = []
          const size = { bytes: 0 }
          for (;;) {
            if (closed || ropts.signal?.aborted === true) return records.length > 0 ? { records, bytes: size.bytes } : undefined
            if (take(limits, records, size)) return { records, bytes: size.bytes }
            if (await fill()) continue
            if (records.length > 0 || ropts.wait !== true) return { records, bytes: size.bytes }
            // Caught up: wait for the next group commit.
            await new Promise<void>((resolve) => {
              const wake = (): void => {
                flushWaiters.delete(wake)
                ropts.signal?.removeEventListener('abort', wake)
                resolve()
              }
              flushWaiters.add(wake)
              ropts.signal?.addEventListener('abort', wake, { once: true })
              if (closed || ropts.signal?.aborted === true) wake()
            })
          }
        } finally {
          reading = false
        }
      },

      async close () {
        if (fh !== undefined) await fh.close().catch(() => {})
        fh = undefined
        seg = undefined
      }
    }
  }

  return {
    get nextSeq () { return nextSeq },
    get bytes () { return totalBytes },
    get shippedSeq () { return shippedSeq },
    get unshippedRecords () { return nextSeq - shippedSeq },
    get unshippedBytes () { return unshippedBytes },
    get full () { return isFull() },
    get waiting () { return waiters.length },

    append (u) {
      if (closed) return Promise.reject(new PushlineError('IOT_ERR_SPOOL', 'spool is closed'))
      if (!isFull()) return new Promise<void>((resolve, reject) => admit(u, resolve, reject))
      if (u.qos === 0) {
        // QoS 0 has no acknowledgement to hold back: counted, logged (rate-limited), and its append resolves.
        opts.onDrop?.(u)
        dropLog((suppressed) => logger?.warn({ event: 'uplink_dropped', reason: 'spool_full', deviceId: u.deviceId, topic: u.topic, alsoDropped: suppressed, unshippedBytes, maxBytes }, 'spool full: QoS 0 uplink dropped'))
        return Promise.resolve()
      }
      opts.onWait?.(u)
      return new Promise<void>((resolve, reject) => { waiters.push({ uplink: u, resolve, reject }) })
    },

    reader () {
      readerInstance ??= createReader()
      return readerInstance
    },

    release (uptoSeq) {
      if (closed || uptoSeq < shippedSeq) return Promise.resolve()
      let n = 0
      let freed = 0
      while (n < handedSeqs.length && (handedSeqs[n] as number) <= uptoSeq) freed += handedBytes[n++] as number
      if (n === 0 || (handedSeqs[n - 1] as number) !== uptoSeq) {
        return Promise.reject(new RangeError(`release(${uptoSeq}): only records the reader handed out can be released`))
      }
      handedSeqs = handedSeqs.slice(n)
      handedBytes = handedBytes.slice(n)
      unshippedBytes -= freed
      shippedSeq = uptoSeq + 1
      admitWaiting()
      return persistOffset()
    },

    async close () {
      if (closed) return
      closed = true
      if (syncTimer !== undefined) clearInterval(syncTimer)
      // Appends still waiting for space were never acknowledged: the devices send them again.
      for (const w of waiters.splice(0)) w.reject(new PushlineError('IOT_ERR_SPOOL', 'spool is closing'))
      for (const w of flushWaiters) w()
      flushWaiters.clear()
      if (writing) await new Promise<void>((resolve) => { idle = resolve })
      await persistLoop?.catch(() => {})
      if (persistedSeq < shippedSeq) {
        await writeOffset(shippedSeq).catch((err: Error) => logger?.error({ event: 'spool_offset_write_failed', err: err.message }, 'shipped offset not persisted'))
      }
      await readerInstance?.close()
      await file.datasync()
      await file.close()
    }
  }
}
