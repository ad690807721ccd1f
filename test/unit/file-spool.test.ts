import { test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { Writable } from 'node:stream'
import pino from 'pino'
import { basename, join } from 'node:path'
import { listSegments, openFileSpool, readSpool, SHIPPED_OFFSET_FILE, type SpoolRecord } from '../../src/uplink/file-spool.ts'
import { decodeRecords, encodeSpoolRecord, FILE_HEADER, plainRecord } from '../../src/uplink/spool-format.ts'
import type { Uplink } from '../../src/uplink/uplink.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { openSpool, tempDir, writeLegacySegment, type LegacyRecord } from '../helpers/spool.ts'

function uplink (i: number, payload: Buffer = Buffer.from(`{"n":${i}}`)): Uplink {
  return {
    msgId: `msg-${i}`,
    deviceId: `dev-${i % 7}`,
    topic: i % 2 === 0 ? `devices/dev-${i % 7}/telemetry` : `devices/dev-${i % 7}/events`,
    kind: i % 2 === 0 ? 'telemetry' : 'events',
    qos: i % 2 === 0 ? 0 : 1,
    nodeId: 'node-1',
    receivedAt: 1_700_000_000_000 + i,
    traceId: `trace-${i}`,
    payload
  }
}

test('a frame is laid out as the format says: CRC-32 of the length field and the body, so older spools read on', { timeout: 10_000 }, () => {
  for (const payload of [Buffer.alloc(0), Buffer.from('{"t":21.5}'), Buffer.alloc(70_000, 0xa5)]) {
    const frame = encodeSpoolRecord(12_345, { ...uplink(3, payload), deviceId: 'gerät-ü' })
    const length = frame.readUInt32BE(0)
    assert.equal(frame.length, 8 + length)
    // Computed apart from the encoder: zlib's CRC-32 over the length field followed by the body.
    assert.equal(frame.readUInt32BE(4), crc32(Buffer.concat([frame.subarray(0, 4), frame.subarray(8)])), `payload of ${payload.length} bytes`)
    const records: SpoolRecord[] = []
    decodeRecords('binary', frame, { record: (r) => records.push(r), unreadable: () => assert.fail('an intact frame read as damaged') })
    assert.equal(records[0]?.deviceId, 'gerät-ü')
    assert.ok(records[0]?.payload.equals(payload))
  }
})

test('every field shape is written with its UTF-8 byte length: short and long ASCII, non-ASCII, at and over the 65,535-byte bound', { timeout: 10_000 }, () => {
  const long = 'x'.repeat(65)
  const shapes: Array<Partial<Uplink>> = [
    { deviceId: long, topic: `devices/${long}/telemetry` },
    { msgId: 'ä'.repeat(10), traceId: '€' },
    { nodeId: 'n'.repeat(0xffff) },
    { topic: 'devices/d/telemetry/' + 'ü'.repeat(40), msgId: 'é' + 'a'.repeat(80) },
    // the first non-ASCII character only in a later field, after short ASCII ones were written
    { traceId: 'trace-ü' },
    { nodeId: 'nöde-1' },
    { topic: 'devices/d/🚀' },
    { deviceId: 'x'.repeat(64), topic: `devices/${'y'.repeat(56)}` }
  ]
  for (const shape of shapes) {
    const u = { ...uplink(5), ...shape }
    const records: SpoolRecord[] = []
    decodeRecords('binary', encodeSpoolRecord(7, u), { record: (r) => records.push(r), unreadable: () => assert.fail('an intact frame read as damaged') })
    assertRecord(records[0], 7, u)
  }
  // 65,536 bytes: in ASCII and as 32,768 two-byte characters (a string of 32,768 UTF-16 units).
  for (const over of ['n'.repeat(0x10000), 'ä'.repeat(0x8000)]) {
    assert.throws(() => encodeSpoolRecord(7, { ...uplink(5), nodeId: over }), RangeError)
  }
})

async function readAll (dir: string): Promise<SpoolRecord[]> {
  const out: SpoolRecord[] = []
  for await (const r of readSpool(dir)) out.push(r)
  return out
}

function assertRecord (r: SpoolRecord | undefined, seq: number, u: Uplink): void {
  assert.ok(r !== undefined, `record ${seq} is missing`)
  assert.deepEqual(plainRecord(r), {
    seq,
    msgId: u.msgId,
    deviceId: u.deviceId,
    topic: u.topic,
    kind: u.kind,
    qos: u.qos,
    nodeId: u.nodeId,
    receivedAt: u.receivedAt,
    traceId: u.traceId,
    payload: u.payload
  })
  assert.ok(r.payload.equals(u.payload), `payload of record ${seq}`)
}

test('appended uplinks read back in order with every field and the exact payload bytes', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  const binary = Buffer.from([0x00, 0xff, 0x10, 0x0a, 0x0d, 0x22, 0x5c, 0xc3, 0x28, 0x7f, 0x80])
  const uplinks = [uplink(0), uplink(1, binary), uplink(2, Buffer.alloc(0)), uplink(3, Buffer.from('ünïcødé\n"quoted"', 'utf8'))]
  assert.equal(spool.nextSeq, 0)
  for (const u of uplinks) await spool.append(u)
  assert.equal(spool.nextSeq, uplinks.length)
  assert.ok(spool.bytes > 0)

  const records = await readAll(dir)
  assert.equal(records.length, uplinks.length)
  uplinks.forEach((u, i) => assertRecord(records[i], i, u))

  const files = await listSegments(dir)
  assert.equal(files.length, 1)
  assert.equal(spool.bytes, (await stat(files[0] as string)).size)
  assert.ok((await readFile(files[0] as string)).subarray(0, FILE_HEADER.length).equals(FILE_HEADER), 'a binary segment with its header')
})

test('readSpool and listSegments of a missing directory are empty', { timeout: 120_000 }, async (t) => {
  const dir = join(await tempDir(t), 'never-created')
  assert.deepEqual(await listSegments(dir), [])
  assert.deepEqual(await readAll(dir), [])
})

test('listSegments ignores files that are not segments and sorts segments by name', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never', segmentBytes: 1 })
  for (let i = 0; i < 3; i++) await spool.append(uplink(i))
  await spool.close()
  await appendFile(join(dir, 'notes.txt'), 'not a segment\n')
  await appendFile(join(dir, 'seg-1.jsonl'), 'not a segment either\n')
  const files = await listSegments(dir)
  assert.equal(files.length, 3)
  assert.deepEqual(files, [...files].sort())
  for (const f of files) assert.match(basename(f), /^seg-\d{16}\.spool$/)
  assert.deepEqual((await readAll(dir)).map((r) => r.seq), [0, 1, 2])
})

test('many concurrent appends are group-committed and come back in order with seq 0..n-1', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const flushes: Array<{ records: number, bytes: number }> = []
  const spool = await openSpool(t, { dir, fsync: 'always', onFlush: (records, bytes) => flushes.push({ records, bytes }) })
  const n = 2000
  const uplinks = Array.from({ length: n }, (_, i) => uplink(i))
  await Promise.all(uplinks.map((u) => spool.append(u)))

  assert.equal(flushes.reduce((s, f) => s + f.records, 0), n, 'every record was flushed exactly once')
  assert.ok(flushes.length < n, `expected group commit, got ${flushes.length} flushes for ${n} records`)
  assert.ok(flushes.some((f) => f.records > 1), 'at least one flush carried several records')
  assert.equal(flushes.reduce((s, f) => s + f.bytes, 0) + FILE_HEADER.length, spool.bytes, 'records plus the segment header')

  const records = await readAll(dir)
  assert.equal(records.length, n)
  assert.deepEqual(records.map((r) => r.seq), Array.from({ length: n }, (_, i) => i))
  uplinks.forEach((u, i) => assertRecord(records[i], i, u))
  assert.equal(spool.nextSeq, n)
})

test('a small segment size rotates into several segment files and nothing is lost or reordered', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always', segmentBytes: 512 })
  const n = 60
  const uplinks = Array.from({ length: n }, (_, i) => uplink(i, Buffer.alloc(40, i)))
  // Half awaited one by one, half concurrently, so rotation happens under both patterns.
  for (const u of uplinks.slice(0, n / 2)) await spool.append(u)
  await Promise.all(uplinks.slice(n / 2).map((u) => spool.append(u)))
  await spool.close()

  const files = await listSegments(dir)
  assert.ok(files.length >= 3, `expected several segments, got ${files.length}`)
  const records = await readAll(dir)
  assert.equal(records.length, n)
  uplinks.forEach((u, i) => assertRecord(records[i], i, u))

  let total = 0
  for (const f of files) total += (await stat(f)).size
  assert.equal(spool.bytes, total)
})

test('each segment file is named after the sequence number of its first record', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never', segmentBytes: 1 })
  for (let i = 0; i < 4; i++) await spool.append(uplink(i))
  await spool.close()
  for (const f of await listSegments(dir)) {
    const seqs: number[] = []
    decodeRecords('binary', (await readFile(f)).subarray(FILE_HEADER.length), { record: (r) => seqs.push(r.seq), unreadable: () => assert.fail('unreadable') })
    assert.equal(Number(/seg-(\d+)\.spool$/.exec(f)?.[1]), seqs[0], basename(f))
  }
})

test('reopening a closed spool continues the sequence numbers and keeps the old records', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const first = await openSpool(t, { dir, fsync: 'always', segmentBytes: 300 })
  for (let i = 0; i < 5; i++) await first.append(uplink(i))
  await first.close()
  const bytesBefore = first.bytes

  const second = await openSpool(t, { dir, fsync: 'always', segmentBytes: 300 })
  assert.equal(second.nextSeq, 5)
  assert.equal(second.bytes, bytesBefore)
  for (let i = 5; i < 9; i++) await second.append(uplink(i))
  await second.close()

  const third = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(third.nextSeq, 9)
  await third.close()

  const records = await readAll(dir)
  assert.equal(records.length, 9)
  for (let i = 0; i < 9; i++) assertRecord(records[i], i, uplink(i))
})

test('reopening a spool that was closed without records starts at seq 0', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  await (await openSpool(t, { dir, fsync: 'always' })).close()
  const again = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(again.nextSeq, 0)
  await again.append(uplink(0))
  await again.close()
  assert.deepEqual((await readAll(dir)).map((r) => r.seq), [0])
})

test('reopening an empty spool works when the directory is given with a trailing slash', { timeout: 120_000 }, async (t) => {
  const dir = (await tempDir(t)) + '/'
  await (await openFileSpool({ dir, fsync: 'never' })).close()
  const again = await openFileSpool({ dir, fsync: 'never' })
  t.after(() => again.close())
  assert.equal(again.nextSeq, 0)
})

test('a torn last record is dropped on reopen and the next uplink gets the next sequence number', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  for (let i = 0; i < 3; i++) await spool.append(uplink(i))
  await spool.close()

  const files = await listSegments(dir)
  const last = files[files.length - 1] as string
  const goodSize = (await stat(last)).size
  // What a crash in the middle of a write leaves: the first part of a frame.
  await appendFile(last, encodeSpoolRecord(3, uplink(3)).subarray(0, 30))
  // readSpool alone already skips the torn tail.
  assert.deepEqual((await readAll(dir)).map((r) => r.seq), [0, 1, 2])

  const reopened = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(reopened.nextSeq, 3)
  assert.equal((await stat(last)).size, goodSize, 'the torn tail was cut off')
  assert.equal(reopened.bytes, goodSize)
  const next = uplink(3, Buffer.from([1, 2, 3]))
  await reopened.append(next)
  await reopened.close()

  const records = await readAll(dir)
  assert.equal(records.length, 4)
  for (let i = 0; i < 3; i++) assertRecord(records[i], i, uplink(i))
  assertRecord(records[3], 3, next)
  assert.equal((await stat(last)).size, goodSize + encodeSpoolRecord(3, next).length, 'no fragment of the torn record remains')
})

test('append after close rejects with IOT_ERR_SPOOL and writes nothing', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  await spool.append(uplink(0))
  await spool.close()
  await assert.rejects(spool.append(uplink(1)), (err: unknown) => isPushlineError(err, 'IOT_ERR_SPOOL'))
  assert.deepEqual((await readAll(dir)).map((r) => r.msgId), ['msg-0'])
  await spool.close() // a second close is harmless
})

test('close waits for appends in flight, which all resolve and are on disk', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'always' })
  const appends = Array.from({ length: 200 }, (_, i) => spool.append(uplink(i)))
  await spool.close()
  await Promise.all(appends)
  assert.equal((await readAll(dir)).length, 200)
})

for (const fsync of ['always', 'interval', 'never'] as const) {
  test(`fsync policy ${fsync} persists every uplink across a reopen`, { timeout: 120_000 }, async (t) => {
    const dir = await tempDir(t)
    const spool = await openSpool(t, { dir, fsync, segmentBytes: 2048 })
    const uplinks = Array.from({ length: 50 }, (_, i) => uplink(i))
    for (const u of uplinks.slice(0, 25)) await spool.append(u)
    await Promise.all(uplinks.slice(25).map((u) => spool.append(u)))
    assert.ok((await listSegments(dir)).length >= 2, 'the segment size was honoured')
    await spool.close()

    const again = await openSpool(t, { dir, fsync })
    assert.equal(again.nextSeq, 50)
    await again.close()
    const records = await readAll(dir)
    assert.equal(records.length, 50)
    uplinks.forEach((u, i) => assertRecord(records[i], i, u))
  })
}

const legacy = (i: number, payload: Buffer = Buffer.from([0x0a, i, 0x00, 0xff])): LegacyRecord => ({ ...uplink(i), kind: 'telemetry', seq: i, payload })

test('a spool written in the JSON-lines format is read after an upgrade, torn line dropped, and new records follow in a binary segment', { timeout: 10_000 }, async (t) => {
  const dir = await tempDir(t)
  const old = Array.from({ length: 12 }, (_, i) => legacy(i))
  await writeLegacySegment(dir, old.slice(0, 5))
  const second = await writeLegacySegment(dir, old.slice(5), '{"seq":12,"msgId":"msg-12","dev')
  await writeFile(join(dir, SHIPPED_OFFSET_FILE), JSON.stringify({ shippedSeq: 2 }))

  const spool = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(spool.nextSeq, 12, 'numbering goes on after the last intact old record')
  assert.equal(spool.unshippedRecords, 10)
  await spool.append(uplink(12, Buffer.from('after the upgrade')))
  const files = (await listSegments(dir)).map((f) => basename(f))
  assert.deepEqual(files, ['seg-0000000000000000.jsonl', 'seg-0000000000000005.jsonl', 'seg-0000000000000012.spool'], 'old segments are not appended to')
  assert.ok(!(await readFile(second, 'utf8')).includes('"dev\n') && (await readFile(second, 'utf8')).endsWith('\n'), 'the torn line was cut off')

  const batch = await spool.reader().read({ maxRecords: 100, maxBytes: Number.MAX_SAFE_INTEGER })
  assert.deepEqual(batch?.records.map((r) => r.seq), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'from the shipped offset, old then new, in order')
  batch?.records.slice(0, 10).forEach((r, i) => assert.deepEqual(r, old[i + 2]))
  assertRecord(batch?.records[10], 12, uplink(12, Buffer.from('after the upgrade')))
  assert.deepEqual((await readAll(dir)).map((r) => r.seq), Array.from({ length: 13 }, (_, i) => i))

  // Shipped in full, the old segments go like any other.
  await spool.release(12)
  assert.deepEqual((await listSegments(dir)).map((f) => basename(f)), ['seg-0000000000000012.spool'])
})

test('a damaged record in the middle of a segment is skipped and logged; the intact records after it are read and kept', { timeout: 10_000 }, async (t) => {
  const dir = await tempDir(t)
  const first = await openSpool(t, { dir, fsync: 'always' })
  for (let i = 0; i < 6; i++) await first.append(uplink(i))
  await first.close()
  const [file] = await listSegments(dir) as [string]
  const size = (await stat(file)).size
  // Flip one payload byte of record 2: its CRC no longer matches.
  const at = FILE_HEADER.length + encodeSpoolRecord(0, uplink(0)).length + encodeSpoolRecord(1, uplink(1)).length + encodeSpoolRecord(2, uplink(2)).length - 1
  const bytes = await readFile(file)
  bytes[at] = (bytes[at] as number) ^ 0xff
  await writeFile(file, bytes)

  const logs: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'error' }, new Writable({ write (chunk: Buffer, _enc, cb) { logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb() } }))
  const spool = await openSpool(t, { dir, fsync: 'always', logger })
  assert.equal((await stat(file)).size, size, 'not taken for a torn tail: nothing was cut off')
  assert.equal(spool.nextSeq, 6)
  const batch = await spool.reader().read({ maxRecords: 100, maxBytes: Number.MAX_SAFE_INTEGER })
  assert.deepEqual(batch?.records.map((r) => r.seq), [0, 1, 3, 4, 5])
  assert.equal(logs.filter((l) => l.event === 'spool_record_unreadable').length, 1)
  assert.deepEqual((await readAll(dir)).map((r) => r.seq), [0, 1, 3, 4, 5])
})

test('a segment whose header this version does not know stops the spool from opening instead of being overwritten', { timeout: 10_000 }, async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'seg-0000000000000000.spool'), Buffer.from('PLSP\x00\x09\x00\x00future'))
  await assert.rejects(openFileSpool({ dir, fsync: 'never' }), (err) => isPushlineError(err) && err.code === 'IOT_ERR_SPOOL' && /unknown format/.test(err.message))
  assert.equal((await readFile(join(dir, 'seg-0000000000000000.spool'), 'latin1')), 'PLSP\x00\x09\x00\x00future')
})

test('a segment a crash left before its header was complete holds nothing and is written anew', { timeout: 10_000 }, async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'seg-0000000000000000.spool')
  await writeFile(path, FILE_HEADER.subarray(0, 3))
  const spool = await openSpool(t, { dir, fsync: 'always' })
  assert.equal(spool.nextSeq, 0)
  assert.equal(spool.unshippedBytes, 0)
  await spool.append(uplink(0))
  assert.equal(spool.unshippedBytes, encodeSpoolRecord(0, uplink(0)).length)
  assert.equal(spool.bytes, (await stat(path)).size)
  assertRecord((await readAll(dir))[0], 0, uplink(0))
})
