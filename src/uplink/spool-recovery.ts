import { open, readdir, readFile, stat, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Logger } from 'pino'
import { PushlineError } from '../shared/errors.ts'
import {
  bytesBefore, decodeRecords, FILE_HEADER, hasFileHeader, headerBytes, scanSegment, SEGMENT_FILE, segmentFormat,
  type SegmentFormat, type SpoolRecord
} from './spool-format.ts'
import { readShippedOffset } from './spool-offsets.ts'
import type { RecoveredSpool, Segment } from './spool-state.ts'

// What a spool directory holds at open: its segments (torn tails cut off, headers checked), the next sequence
// number, the shipped offset and the bytes not yet shipped.

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

/** Brings a spool directory back to a consistent state after a stop or a crash and says what it holds. */
export async function recoverSpool (dir: string, logger: Logger | undefined): Promise<RecoveredSpool> {
  let nextSeq = 0
  let totalBytes = 0
  const segments: Segment[] = []
  const paths = await listSegments(dir)
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
    shippedSeq = (await readShippedOffset(dir)) ?? segments[0]?.start ?? nextSeq
  } catch (err) {
    logger?.error({ event: 'spool_offset_unreadable', err: (err as Error).message }, 'shipped offset unreadable: the whole spool will be shipped again')
    shippedSeq = segments[0]?.start ?? nextSeq
  }
  // Segments removed by hand: start at what is there. Spool files removed but the offset kept: number on from it.
  if (segments[0] !== undefined && shippedSeq < segments[0].start) shippedSeq = segments[0].start
  if (shippedSeq > nextSeq) nextSeq = shippedSeq

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

  return { segments, nextSeq, totalBytes, shippedSeq, unshippedBytes }
}
