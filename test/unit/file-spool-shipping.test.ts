import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { listSegments, readShippedOffset, readSpool, SHIPPED_OFFSET_FILE, type SpoolRecord } from '../../src/uplink/file-spool.ts'
import { encodeSpoolRecord, FILE_HEADER, FramedRecord, plainRecord } from '../../src/uplink/spool-format.ts'
import type { Uplink } from '../../src/uplink/uplink.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { openSpool, tempDir } from '../helpers/spool.ts'

// The spool as the bridge's write-ahead log: the reader, release and the shipped offset, and the byte bound.

function uplink (i: number, qos: 0 | 1 = 1, payload: Buffer = Buffer.from(`{"n":${i}}`)): Uplink {
  return {
    msgId: `msg-${i}`,
    deviceId: `dev-${i % 3}`,
    topic: `devices/dev-${i % 3}/telemetry`,
    kind: 'telemetry',
    qos,
    nodeId: 'node-1',
    receivedAt: 1_700_000_000_000 + i,
    traceId: `trace-${i}`,
    payload
  }
}

const ALL = { maxRecords: 1_000_000, maxBytes: Number.MAX_SAFE_INTEGER }
/** Spool bytes of uplink i: its frame. */
const recordBytes = (i: number, qos: 0 | 1 = 1): number => encodeSpoolRecord(i, uplink(i, qos)).length

test('the reader hands out committed records in order across segments, within the record and byte limits', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never', segmentBytes: 600 })
  for (let i = 0; i < 40; i++) await spool.append(uplink(i))
  assert.ok((await listSegments(dir)).length >= 4)

  const reader = spool.reader()
  assert.equal(reader, spool.reader(), 'one reader per spool')
  assert.equal(reader.position, 0)
  const first = await reader.read({ maxRecords: 7, maxBytes: 1_000_000 })
  assert.deepEqual(first?.records.map((r) => r.seq), [0, 1, 2, 3, 4, 5, 6])
  assert.ok(first?.records.every((r) => r instanceof FramedRecord), 'binary frames are handed out undecoded, for the shipper to write from')
  assert.equal(first?.bytes, [0, 1, 2, 3, 4, 5, 6].reduce((n, i) => n + recordBytes(i), 0))
  const byBytes = await reader.read({ maxRecords: 100, maxBytes: recordBytes(7) + recordBytes(8) })
  assert.deepEqual(byBytes?.records.map((r) => r.seq), [7, 8])
  const oversized = await reader.read({ maxRecords: 100, maxBytes: 1 })
  assert.deepEqual(oversized?.records.map((r) => r.seq), [9], 'one record even when it alone is over the byte limit')
  const rest = await reader.read(ALL)
  assert.deepEqual(rest?.records.map((r) => r.seq), Array.from({ length: 30 }, (_, i) => i + 10))
  assert.equal(reader.position, 40)
  assert.deepEqual((await reader.read(ALL))?.records, [], 'nothing more without waiting')
  assert.deepEqual(plainRecord(rest?.records[5] as SpoolRecord), (await collect(dir))[15], 'the same records readSpool sees')
})

async function collect (dir: string): Promise<SpoolRecord[]> {
  const out: SpoolRecord[] = []
  for await (const r of readSpool(dir)) out.push(r)
  return out
}

test('a waiting read wakes up when the next record is committed, and an abort ends the wait', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  const reader = spool.reader()
  const waiting = reader.read(ALL, { wait: true })
  // A read that returned at once would hold no record: msg-0 is appended only after the read began.
  await spool.append(uplink(0))
  assert.deepEqual((await waiting)?.records.map((r) => r.msgId), ['msg-0'])

  const ac = new AbortController()
  const aborted = reader.read(ALL, { wait: true, signal: ac.signal })
  ac.abort()
  assert.equal(await aborted, undefined)
})

test('records whose lines cross a read chunk boundary come back whole, payload bytes intact', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never' })
  // ~300 KiB of base64 per record: several records straddle the reader's 1 MiB chunks.
  const payloads = Array.from({ length: 12 }, (_, i) => Buffer.alloc(230_000 + i * 1001, i + 1))
  await Promise.all(payloads.map((p, i) => spool.append(uplink(i, 1, p))))
  const batch = await spool.reader().read(ALL)
  assert.equal(batch?.records.length, 12)
  batch?.records.forEach((r, i) => assert.ok(r.payload.equals(payloads[i] as Buffer), `payload ${i}`))
})

test('release persists the shipped offset and deletes segments holding only shipped records, never the current one', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always', segmentBytes: 600 })
  for (let i = 0; i < 30; i++) await spool.append(uplink(i))
  const before = await listSegments(dir)
  const totalUnshipped = spool.unshippedBytes
  assert.equal(totalUnshipped, spool.bytes - FILE_HEADER.length * before.length, 'every record is unshipped; segment headers are no records')
  assert.equal(spool.unshippedRecords, 30)

  const reader = spool.reader()
  const batch = await reader.read({ maxRecords: 20, maxBytes: 1_000_000 })
  await assert.rejects(spool.release(25), RangeError, 'records not handed out cannot be released')
  await spool.release(19)
  assert.equal(spool.shippedSeq, 20)
  assert.equal(spool.unshippedRecords, 10)
  assert.equal(spool.unshippedBytes, totalUnshipped - (batch?.bytes ?? 0))
  assert.equal(await readShippedOffset(dir), 20)
  const after = await listSegments(dir)
  assert.ok(after.length < before.length, 'shipped segments were deleted')
  const remaining = await collect(dir)
  assert.ok((remaining[0]?.seq ?? 99) <= 20, 'the segment holding seq 20 is kept')
  assert.equal(remaining[remaining.length - 1]?.seq, 29)
  let onDisk = 0
  for (const f of after) onDisk += (await stat(f)).size
  assert.equal(spool.bytes, onDisk)

  // Everything shipped: the segment being written stays.
  await reader.read(ALL)
  await spool.release(29)
  assert.equal(spool.unshippedBytes, 0)
  assert.equal(spool.unshippedRecords, 0)
  assert.ok((await listSegments(dir)).length >= 1)
  await spool.append(uplink(30))
  assert.deepEqual((await reader.read(ALL))?.records.map((r) => r.seq), [30])
})

test('after a restart the reader resumes at the persisted offset and the unshipped counts match what is left', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const first = await openSpool(t, { dir, fsync: 'always', segmentBytes: 500 })
  for (let i = 0; i < 25; i++) await first.append(uplink(i))
  await first.reader().read({ maxRecords: 12, maxBytes: 1_000_000 })
  await first.release(11)
  await first.close()

  const second = await openSpool(t, { dir, fsync: 'always', segmentBytes: 500 })
  assert.equal(second.shippedSeq, 12)
  assert.equal(second.nextSeq, 25)
  assert.equal(second.unshippedRecords, 13)
  assert.equal(second.unshippedBytes, Array.from({ length: 13 }, (_, i) => recordBytes(i + 12)).reduce((a, b) => a + b, 0))
  const reader = second.reader()
  assert.equal(reader.position, 12)
  assert.deepEqual((await reader.read(ALL))?.records.map((r) => r.seq), Array.from({ length: 13 }, (_, i) => i + 12))
})

test('closing after a release without waiting for it still leaves the offset on disk', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  for (let i = 0; i < 5; i++) await spool.append(uplink(i))
  await spool.reader().read(ALL)
  spool.release(4).catch(() => {})
  await spool.close()
  assert.equal(await readShippedOffset(dir), 5)
})

test('segments left over by a crash between the offset write and their deletion are deleted at the next start', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const first = await openSpool(t, { dir, fsync: 'never', segmentBytes: 300 })
  for (let i = 0; i < 12; i++) await first.append(uplink(i))
  await first.close()
  const segments = await listSegments(dir)
  assert.ok(segments.length >= 3)
  const thirdStart = Number(/seg-(\d+)/.exec(segments[2] as string)?.[1])
  await writeFile(join(dir, SHIPPED_OFFSET_FILE), JSON.stringify({ shippedSeq: thirdStart }))

  const second = await openSpool(t, { dir, fsync: 'never', segmentBytes: 300 })
  assert.deepEqual(await listSegments(dir), segments.slice(2))
  assert.equal(second.reader().position, thirdStart)
  assert.equal(second.unshippedRecords, 12 - thirdStart)
})

test('a damaged offset file means shipping everything again, not losing anything', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const first = await openSpool(t, { dir, fsync: 'always' })
  for (let i = 0; i < 4; i++) await first.append(uplink(i))
  await first.close()
  await writeFile(join(dir, SHIPPED_OFFSET_FILE), '{"shippedSeq": "oops"')
  const second = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(second.shippedSeq, 0)
  assert.deepEqual((await second.reader().read(ALL))?.records.map((r) => r.seq), [0, 1, 2, 3])
})

test('with the segment files gone but the offset kept, numbering goes on from the offset', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, SHIPPED_OFFSET_FILE), JSON.stringify({ shippedSeq: 500 }))
  const spool = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(spool.nextSeq, 500)
  await spool.append(uplink(0))
  assert.deepEqual((await spool.reader().read(ALL))?.records.map((r) => r.seq), [500])
})

test('over the byte bound a QoS 1 append waits for a release, a QoS 0 append is dropped and counted, and order is kept', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const dropped: string[] = []
  const waited: string[] = []
  const spool = await openSpool(t, { dir, fsync: 'always', maxBytes: recordBytes(0) * 3, onDrop: (u) => dropped.push(u.msgId), onWait: (u) => waited.push(u.msgId) })
  for (let i = 0; i < 3; i++) await spool.append(uplink(i))
  assert.equal(spool.full, true)

  const blocked = [spool.append(uplink(3)), spool.append(uplink(4))]
  const settled = [false, false]
  blocked.forEach((p, i) => { p.then(() => { settled[i] = true }, () => { settled[i] = true }) })
  assert.equal(spool.waiting, 2)
  // An append is written only once it has a sequence number, which it gets when admitted: none was given out,
  // so neither waiting append can have been written or acknowledged.
  assert.equal(spool.nextSeq, 3, 'QoS 1 appends wait while the spool is full')
  await spool.append(uplink(5, 0)) // resolves at once: QoS 0 has no acknowledgement to hold back
  assert.deepEqual(dropped, ['msg-5'])
  assert.deepEqual(waited, ['msg-3', 'msg-4'])

  const reader = spool.reader()
  await reader.read({ maxRecords: 1, maxBytes: 1_000_000 })
  assert.deepEqual(settled, [false, false], 'nothing was acknowledged before the release')
  await spool.release(0)
  await blocked[0]
  assert.equal(spool.waiting, 1, 'one record of room lets one waiting append in')
  assert.equal(spool.nextSeq, 4, 'the second waiting append has no sequence number yet')
  assert.equal(settled[1], false, 'the second waiting append is not acknowledged')
  await spool.append(uplink(6, 0))
  assert.deepEqual(dropped, ['msg-5', 'msg-6'], 'QoS 0 cannot overtake a waiting QoS 1 uplink')

  await reader.read({ maxRecords: 2, maxBytes: 1_000_000 })
  await spool.release(2)
  await blocked[1]
  assert.equal(spool.full, false, 'two records of room: the spool is below its bound again')
  const records = await collect(dir)
  assert.deepEqual(records.map((r) => [r.seq, r.msgId]), [[0, 'msg-0'], [1, 'msg-1'], [2, 'msg-2'], [3, 'msg-3'], [4, 'msg-4']])
})

test('without a byte bound nothing waits and nothing is dropped, however much is unshipped', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never', onDrop: () => assert.fail('dropped') })
  await Promise.all(Array.from({ length: 500 }, (_, i) => spool.append(uplink(i, i % 2 === 0 ? 0 : 1))))
  assert.equal(spool.full, false)
  assert.equal(spool.unshippedRecords, 500)
  assert.equal((await collect(dir)).length, 500)
})

test('closing the spool refuses the appends still waiting for room; they were never acknowledged', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always', maxBytes: 1 })
  await spool.append(uplink(0))
  const refused = assert.rejects(spool.append(uplink(1)), (err: unknown) => isPushlineError(err, 'IOT_ERR_SPOOL'))
  await spool.close()
  await refused
  assert.deepEqual((await collect(dir)).map((r) => r.seq), [0])
})

test('the offset file is replaced atomically: no temporary file is left behind', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  await spool.append(uplink(0))
  await spool.reader().read(ALL)
  await spool.release(0)
  assert.deepEqual(JSON.parse(await readFile(join(dir, SHIPPED_OFFSET_FILE), 'utf8')), { shippedSeq: 1 })
  await assert.rejects(stat(join(dir, `${SHIPPED_OFFSET_FILE}.tmp`)), { code: 'ENOENT' })
})

/** Overwrites every record byte of the spool's segment files with zeros (headers kept), as damage on the disk would. */
async function zeroRecords (dir: string): Promise<void> {
  const { open, readdir } = await import('node:fs/promises')
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.spool'))) {
    const fh = await open(join(dir, name), 'r+')
    try {
      const { size } = await fh.stat()
      if (size > FILE_HEADER.length) await fh.write(Buffer.alloc(size - FILE_HEADER.length), 0, size - FILE_HEADER.length, FILE_HEADER.length)
    } finally {
      await fh.close()
    }
  }
}

const expected = (from: number, to: number): Array<ReturnType<typeof plainRecord>> =>
  Array.from({ length: to - from }, (_, k) => ({ seq: from + k, ...uplink(from + k) }))

test('a reader caught up with the writer takes the committed writes from memory, not from the file', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  const reader = spool.reader()
  for (let i = 0; i < 5; i++) await spool.append(uplink(i))
  // The file no longer holds the records: only a reader that did not read it back hands them out.
  await zeroRecords(dir)
  const batch = await reader.read(ALL)
  assert.deepEqual(batch?.records.map(plainRecord), expected(0, 5))
  assert.equal(batch?.bytes, [0, 1, 2, 3, 4].reduce((n, i) => n + recordBytes(i), 0))
  assert.ok(batch?.records.every((r) => r instanceof FramedRecord))
})

test('a reader behind the writer by more than its memory reads the file, then takes writes from memory again once caught up', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  // Memory for about two records: the rest of the first ten must come from the file.
  const spool = await openSpool(t, { dir, fsync: 'never', readerMemoryBytes: recordBytes(0) * 2 + 1 })
  const reader = spool.reader()
  await Promise.all(Array.from({ length: 10 }, (_, i) => spool.append(uplink(i))))
  for (let i = 10; i < 20; i++) await spool.append(uplink(i))
  const behind = await reader.read(ALL)
  assert.deepEqual(behind?.records.map(plainRecord), expected(0, 20), 'in order, nothing lost or repeated')
  assert.deepEqual((await reader.read(ALL))?.records, [])
  // Caught up: the next write is kept again (the file is zeroed under it).
  await spool.append(uplink(20))
  await zeroRecords(dir)
  assert.deepEqual((await reader.read(ALL))?.records.map(plainRecord), expected(20, 21))
})

test('a caught-up reader follows the writer across segment rotations, in order, as readSpool sees the files', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never', segmentBytes: 600 })
  const reader = spool.reader()
  const got: SpoolRecord[] = []
  for (let i = 0; i < 40; i++) {
    await spool.append(uplink(i))
    if (i % 3 === 0) got.push(...((await reader.read(ALL))?.records ?? []))
  }
  got.push(...((await reader.read(ALL))?.records ?? []))
  assert.ok((await listSegments(dir)).length >= 4)
  assert.deepEqual(got.map(plainRecord), expected(0, 40))
  assert.deepEqual(got.map(plainRecord), await collect(dir))
})
