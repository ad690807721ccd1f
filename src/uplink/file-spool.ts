import { mkdir, open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { FsyncPolicy } from '../config/settings.ts'
import { PushlineError } from '../shared/errors.ts'
import type { Uplink, UplinkSink } from './uplink.ts'

// An append-only, segmented log of uplinks on local disk: one JSON line per uplink, payload in base64.
// Appends are group-committed: everything queued while a write is in flight goes out in the next single
// write (+ fdatasync with policy `always`), and each append resolves once its line is durable.

export interface SpoolRecord {
  readonly seq: number
  readonly msgId: string
  readonly deviceId: string
  readonly topic: string
  readonly kind: Uplink['kind']
  readonly qos: Uplink['qos']
  readonly nodeId: string
  readonly receivedAt: number
  readonly traceId: string
  readonly payload: string
}

export interface FileSpoolOptions {
  readonly dir: string
  readonly fsync: FsyncPolicy
  /** A new segment file starts when the current one reaches this size. */
  readonly segmentBytes?: number
  readonly onFlush?: (records: number, bytes: number) => void
}

export interface FileSpool extends UplinkSink {
  /** Sequence number the next uplink will get. */
  readonly nextSeq: number
  /** Bytes written to disk and not yet removed. */
  readonly bytes: number
}

const SEGMENT = /^seg-(\d{16})\.jsonl$/
const segmentName = (startSeq: number): string => `seg-${String(startSeq).padStart(16, '0')}.jsonl`

interface Pending {
  readonly seq: number
  readonly line: string
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

export async function listSegments (dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw err
  })
  return names.filter((n) => SEGMENT.test(n)).sort().map((n) => join(dir, n))
}

/** Every complete record in the spool, oldest first. */
export async function * readSpool (dir: string): AsyncGenerator<SpoolRecord> {
  for (const file of await listSegments(dir)) {
    const text = await readFile(file, 'utf8')
    for (const line of text.split('\n')) {
      if (line.length === 0) continue
      try {
        yield JSON.parse(line) as SpoolRecord
      } catch {
        // A torn last line from a crash mid-write; it was never acknowledged.
      }
    }
  }
}

/** Drops a torn tail left by a crash and returns the sequence number after the last complete record. */
async function recoverTail (file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8')
  const end = text.lastIndexOf('\n') + 1
  if (end < text.length) {
    const fh = await open(file, 'r+')
    try {
      await fh.truncate(Buffer.byteLength(text.slice(0, end)))
    } finally {
      await fh.close()
    }
  }
  const lines = text.slice(0, end).split('\n').filter((l) => l.length > 0)
  const last = lines[lines.length - 1]
  return last === undefined ? undefined : (JSON.parse(last) as SpoolRecord).seq + 1
}

export async function openFileSpool (opts: FileSpoolOptions): Promise<FileSpool> {
  const segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024
  await mkdir(opts.dir, { recursive: true })

  let nextSeq = 0
  let totalBytes = 0
  const segments = await listSegments(opts.dir)
  const lastSegment = segments[segments.length - 1]
  for (const s of segments) totalBytes += (await stat(s)).size
  if (lastSegment !== undefined) {
    const before = (await stat(lastSegment)).size
    const tailSeq = await recoverTail(lastSegment)
    totalBytes -= before - (await stat(lastSegment)).size
    nextSeq = tailSeq ?? Number((SEGMENT.exec(basename(lastSegment)) as RegExpExecArray)[1])
  }

  let file: FileHandle = await open(lastSegment ?? join(opts.dir, segmentName(nextSeq)), 'a')
  let fileBytes = (await file.stat()).size
  let queue: Pending[] = []
  let writing = false
  let closed = false
  let idle: (() => void) | undefined
  let dirty = false
  const syncTimer = opts.fsync === 'interval'
    ? setInterval(() => { if (dirty && !writing) { dirty = false; file.datasync().catch(() => {}) } }, 1000)
    : undefined
  syncTimer?.unref()

  /** Starts a segment named after the first record it will hold. */
  async function rotate (firstSeq: number): Promise<void> {
    await file.datasync()
    await file.close()
    file = await open(join(opts.dir, segmentName(firstSeq)), 'a')
    fileBytes = 0
  }

  async function flush (): Promise<void> {
    writing = true
    while (queue.length > 0) {
      const batch = queue
      queue = []
      const buf = Buffer.from(batch.map((p) => p.line).join(''))
      try {
        if (fileBytes >= segmentBytes) await rotate((batch[0] as Pending).seq)
        await file.write(buf)
        if (opts.fsync === 'always') await file.datasync()
        else dirty = true
        fileBytes += buf.length
        totalBytes += buf.length
        opts.onFlush?.(batch.length, buf.length)
        for (const p of batch) p.resolve()
      } catch (err) {
        const e = new PushlineError('IOT_ERR_SPOOL', `spool write failed: ${(err as Error).message}`, undefined, { cause: err })
        for (const p of batch) p.reject(e)
      }
    }
    writing = false
    idle?.()
  }

  return {
    get nextSeq () { return nextSeq },
    get bytes () { return totalBytes },

    append (u) {
      if (closed) return Promise.reject(new PushlineError('IOT_ERR_SPOOL', 'spool is closed'))
      const record: SpoolRecord = {
        seq: nextSeq++,
        msgId: u.msgId,
        deviceId: u.deviceId,
        topic: u.topic,
        kind: u.kind,
        qos: u.qos,
        nodeId: u.nodeId,
        receivedAt: u.receivedAt,
        traceId: u.traceId,
        payload: u.payload.toString('base64')
      }
      return new Promise<void>((resolve, reject) => {
        queue.push({ seq: record.seq, line: JSON.stringify(record) + '\n', resolve, reject })
        if (!writing) flush().catch(() => {}) // flush settles every append itself
      })
    },

    async close () {
      if (closed) return
      closed = true
      if (syncTimer !== undefined) clearInterval(syncTimer)
      if (writing) await new Promise<void>((resolve) => { idle = resolve })
      await file.datasync()
      await file.close()
    }
  }
}
