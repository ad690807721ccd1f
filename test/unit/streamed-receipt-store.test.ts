import assert from 'node:assert/strict'
import { appendFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import type { ReceiptRecord } from '../../src/push/receipt-record.ts'
import { createSpoolReceiptStream, type ReceiptStream } from '../../src/push/receipt-stream.ts'
import { openReceiptJournal } from '../../src/push/receipt-journal.ts'
import { recoverReceipts, streamJobReceipts, streamReceipts } from '../../src/push/streamed-receipt-store.ts'
import { createMemoryDeviceStore } from '../../src/stores/memory-device-store.ts'
import { createMemoryHistoryStore } from '../../src/stores/memory-history-store.ts'
import { createMemoryPushJobStore } from '../../src/stores/memory-push-job-store.ts'
import { createMemoryReceiptStore } from '../../src/stores/memory-receipt-store.ts'
import type { PushRecord } from '../../src/stores/receipt-store.ts'
import { openFileSpool } from '../../src/uplink/file-spool.ts'
import { eventually } from '../helpers/eventually.ts'
import { rebuildCounts } from '../helpers/receipts.ts'

const TRACE = 'c'.repeat(32)
const NOW = 5_000

function collecting (): ReceiptStream & { records: ReceiptRecord[] } {
  const records: ReceiptRecord[] = []
  return { records, async write (rs) { records.push(...rs) } }
}

const brief = (records: readonly ReceiptRecord[]): string[] => records.map((r) => `${r.deviceId}:${r.state}:${r.id ?? '-'}`)

test('a targeted push: a record for each receipt opened and each move the store made, none for a move it refused', { timeout: 120_000 }, async () => {
  const stream = collecting()
  const store = streamReceipts(createMemoryReceiptStore(), { stream, nodeId: 'n1', now: () => NOW })
  const push: PushRecord = { pushId: 'p1', target: { kind: 'devices', count: 3 }, qos: 1, ttlSeconds: 1, createdAt: 1000, traceId: TRACE }
  await store.createPush(push, 3)
  await store.open('p1', [{ deviceId: 'a', state: 'queued', id: 1 }, { deviceId: 'b', state: 'queued', id: 9 }, { deviceId: 'x', state: 'failed', reason: 'unknown device' }], 1000)
  await store.transition('p1', 'a', 'sent', 1100)
  await store.transition('p1', 'a', 'sent', 1101) // repeated: no record
  await store.transition('p1', 'a', 'delivered', 1200)
  await store.transition('p1', 'a', 'acked', 1300)
  await store.transition('p1', 'x', 'delivered', 1300) // failed is final: no record
  await store.progress('p1', 3, { total: 3 })
  await store.sweepExpired('p1', 10, 2000)
  assert.deepEqual(brief(stream.records), ['a:queued:1', 'b:queued:9', 'x:failed:-', 'a:sent:1', 'a:delivered:1', 'a:acked:1', 'b:expired:9'])
  assert.deepEqual(stream.records.map((r) => r.at), [1000, 1000, 1000, 1100, 1200, 1300, 2000])
  assert.ok(stream.records.every((r) => r.pushId === 'p1' && r.nodeId === 'n1' && r.traceId === TRACE))
  assert.deepEqual(rebuildCounts(stream.records, 'p1'), (await store.getPush('p1'))?.counts)
})

test('a group or broadcast push: one record per device and state the store counted, none for repeats or other pushes', { timeout: 120_000 }, async () => {
  const stream = collecting()
  const store = streamReceipts(createMemoryReceiptStore(), { stream, nodeId: 'n2', now: () => NOW })
  await store.createPush({ pushId: 'g', target: { kind: 'group', group: 'x' }, qos: 1, ttlSeconds: 60, createdAt: 1, traceId: TRACE }, undefined)
  await store.createPush({ pushId: 't', target: { kind: 'device', deviceId: 'a' }, qos: 1, ttlSeconds: 60, createdAt: 1 }, 1)
  await store.countDeliveries('g', ['a', 'b', 'c'], ['a', 'd'])
  await store.countDeliveries('g', ['b', 'a'], ['b', 'b']) // a resend of b and a: nothing new sent; b got it
  await store.countAcks('g', ['c', 'c'])
  await store.countDeliveries('g', ['c'], ['c']) // c acked already: counts nothing
  await store.countAcks('t', ['a']) // a targeted push keeps no ack set
  await store.countAcks('nope', ['a'])
  assert.deepEqual(brief(stream.records), ['a:sent:-', 'b:sent:-', 'c:sent:-', 'a:delivered:-', 'd:delivered:-', 'b:delivered:-', 'c:acked:-'])
  assert.ok(stream.records.every((r) => r.pushId === 'g' && r.at === NOW && r.nodeId === 'n2' && r.traceId === TRACE))
  assert.deepEqual(rebuildCounts(stream.records, 'g'), (await store.getPush('g'))?.counts)
  assert.deepEqual(rebuildCounts(stream.records, 'g'), { queued: 0, sent: 0, delivered: 3, acked: 1, expired: 0, failed: 0 })
})

test('a list push chunk commit writes its queued and failed records once, with message ids and the push\'s trace id', { timeout: 120_000 }, async () => {
  const stream = collecting()
  const devices = createMemoryDeviceStore()
  for (const id of ['a', 'b']) await devices.create({ id, groups: [], metadata: {}, secretHash: 'x', enabled: true, createdAt: 1, updatedAt: 1 })
  const history = createMemoryHistoryStore({ maxMessages: 10, maxAgeMs: 3600_000 })
  const stored = createMemoryReceiptStore()
  const receipts = streamReceipts(stored, { stream, nodeId: 'api' })
  // As push-stack.ts wires it: the job store opens receipts in the unstreamed store, its wrapper writes the records.
  const jobs = streamJobReceipts(createMemoryPushJobStore({ devices, history, receipts: stored }), stored, { stream, nodeId: 'api' })
  await receipts.createPush({ pushId: 'l', target: { kind: 'devices', count: 4 }, qos: 1, ttlSeconds: 60, createdAt: 1, traceId: TRACE }, 4)
  await jobs.create('l', ['a', 'zz', 'b', 'bad id'], { data: 1, qos: 1, expiresAt: 60_000, traceId: TRACE })
  const entry = { pushId: 'l', sentAt: 7, expiresAt: 60_000, qos: 1 as const, data: 1, traceId: TRACE }
  assert.deepEqual(await jobs.commit('l', 0, ['a', 'zz', 'b'], ['bad id'], entry), [1, null, 1])
  assert.equal(await jobs.commit('l', 0, ['a'], [], entry), undefined, 'a chunk someone else committed')
  assert.deepEqual(brief(stream.records), ['a:queued:1', 'zz:failed:-', 'b:queued:1', 'bad id:failed:-'])
  assert.ok(stream.records.every((r) => r.at === 7 && r.traceId === TRACE && r.nodeId === 'api'))
  assert.deepEqual(rebuildCounts(stream.records, 'l'), (await receipts.getPush('l'))?.counts)
})

test('a record the receipts spool cannot take is counted and logged; the transition still resolves', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-receipts-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const spool = await openFileSpool({ dir, fsync: 'always' })
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
  let written = 0
  let dropped = 0
  const stream = createSpoolReceiptStream({ spool, logger, onWritten: (n) => { written += n }, onDropped: (n) => { dropped += n } })
  const store = streamReceipts(createMemoryReceiptStore(), { stream, nodeId: 'n1' })
  await store.createPush({ pushId: 'p', target: { kind: 'device', deviceId: 'a' }, qos: 1, ttlSeconds: 60, createdAt: 1 }, 1)
  await store.open('p', [{ deviceId: 'a', state: 'queued', id: 1 }], 1)
  assert.equal(written, 1)
  await spool.close()
  assert.equal((await store.transition('p', 'a', 'sent', 2))?.state, 'sent')
  assert.equal(dropped, 1)
  assert.equal((await store.getReceipt('p', 'a'))?.state, 'sent')
  const line = lines.find((l) => l.event === 'receipt_record_dropped')
  assert.equal(line?.state, 'sent')
  assert.equal(line?.pushId, 'p')
})

test('intents a killed run left open are recovered at the next start: the records of the moves that happened, once each intent', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-journal-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'intents.jsonl')
  const stored = createMemoryReceiptStore()
  await stored.createPush({ pushId: 'p', target: { kind: 'devices', count: 3 }, qos: 1, ttlSeconds: 60, createdAt: 1, traceId: TRACE }, 3)
  await stored.createPush({ pushId: 'b', target: { kind: 'all' }, qos: 1, ttlSeconds: 60, createdAt: 1 }, undefined)

  // A run that dies after each store commit, before the record write: the stream throws in place of the kill.
  const first = await openReceiptJournal({ path, fsync: false })
  const dying: ReceiptStream = { async write () { throw new Error('killed') } }
  const store = streamReceipts(stored, { stream: dying, nodeId: 'n1', journal: first.journal, now: () => NOW })
  await assert.rejects(store.open('p', [{ deviceId: 'a', state: 'queued', id: 1 }, { deviceId: 'b', state: 'queued', id: 1 }], 10))
  await assert.rejects(store.transition('p', 'a', 'delivered', 20))
  await assert.rejects(store.countDeliveries('b', ['x', 'y'], ['y']))
  // Killed after an intent was written and before its commit: the move never happened, and b fails elsewhere.
  await first.journal.begin({ kind: 'transition', pushId: 'p', deviceId: 'b', to: 'acked', at: 21 })
  await first.journal.close()
  await stored.transition('p', 'b', 'failed', 22, 'gone')
  // A crash mid-line leaves a torn last line.
  await appendFile(path, '{"i":99,"kind":"tra')

  const second = await openReceiptJournal({ path, fsync: false })
  assert.deepEqual(second.leftOpen.map((o) => o.intent.kind), ['open', 'transition', 'count', 'transition'])
  const stream = collecting()
  const written = await recoverReceipts(stored, { stream, nodeId: 'n1', journal: second.journal }, second.leftOpen)
  assert.deepEqual(brief(stream.records).sort(), ['a:delivered:1', 'a:queued:1', 'b:queued:1', 'x:sent:-', 'y:delivered:-'].sort())
  assert.equal(written, 5)
  assert.ok(stream.records.filter((r) => r.pushId === 'p').every((r) => r.traceId === TRACE && r.nodeId === 'n1'))
  await second.journal.close()
  const third = await openReceiptJournal({ path, fsync: false })
  assert.deepEqual(third.leftOpen, [], 'recovered intents are done')
  await third.journal.close()
})

// Redis can run a command whose reply the client gave up on (a command timeout while the API process was starved,
// a connection lost after the command left): the store made the move, the caller got an error. A list chunk is not
// committed again after that (the resumed job goes on past it), so its records must not wait for the next start.
test('a chunk commit the store made although it failed (lost reply) gets its records without a restart; the intent is done', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-journal-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'intents.jsonl')
  const opened = await openReceiptJournal({ path, fsync: false })
  const stream = collecting()
  const devices = createMemoryDeviceStore()
  await devices.create({ id: 'a', groups: [], metadata: {}, secretHash: 'x', enabled: true, createdAt: 1, updatedAt: 1 })
  const history = createMemoryHistoryStore({ maxMessages: 10, maxAgeMs: 3600_000 })
  const stored = createMemoryReceiptStore()
  const memoryJobs = createMemoryPushJobStore({ devices, history, receipts: stored })
  const lostReply: typeof memoryJobs = {
    ...memoryJobs,
    async commit (...args) {
      await memoryJobs.commit(...args)
      throw new Error('Command timed out')
    }
  }
  const jobs = streamJobReceipts(lostReply, stored, { stream, nodeId: 'api', journal: opened.journal })
  await stored.createPush({ pushId: 'l', target: { kind: 'devices', count: 3 }, qos: 1, ttlSeconds: 60, createdAt: 1, traceId: TRACE }, 3)
  await memoryJobs.create('l', ['a', 'nobody-1', 'bad id'], { data: 1, qos: 1, expiresAt: 60_000, traceId: TRACE })
  const entry = { pushId: 'l', sentAt: 7, expiresAt: 60_000, qos: 1 as const, data: 1, traceId: TRACE }
  await assert.rejects(jobs.commit('l', 0, ['a', 'nobody-1'], ['bad id'], entry), /timed out/)
  assert.equal((await memoryJobs.next('l', 10))?.cursor, 3, 'the store made the commit: the job goes on past the chunk')
  assert.ok(await eventually(() => stream.records.length === 3, 30_000), 'the chunk\'s records are written')
  assert.deepEqual(brief(stream.records).sort(), ['a:queued:1', 'bad id:failed:-', 'nobody-1:failed:-'])
  assert.ok(stream.records.every((r) => r.at === 7 && r.traceId === TRACE))
  assert.deepEqual(rebuildCounts(stream.records, 'l'), (await stored.getPush('l'))?.counts)
  await opened.journal.close()
  const next = await openReceiptJournal({ path, fsync: false })
  assert.deepEqual(next.leftOpen, [], 'the intent is done: the next start writes nothing again')
  await next.journal.close()
})

test('a failed transition is checked until the store answers: a record if the store made it, none if it did not', { timeout: 120_000 }, async () => {
  const stream = collecting()
  const stored = createMemoryReceiptStore()
  await stored.createPush({ pushId: 'p', target: { kind: 'devices', count: 2 }, qos: 1, ttlSeconds: 60, createdAt: 1, traceId: TRACE }, 2)
  await stored.open('p', [{ deviceId: 'a', state: 'queued', id: 4 }, { deviceId: 'b', state: 'queued', id: 5 }], 1)
  // Made but answered with an error; then the store cannot be read twice (an outage) before it answers again.
  let unreadable = 0
  const flaky: typeof stored = {
    ...stored,
    async transition (pushId, deviceId, to, at, reason) {
      if (deviceId === 'b') throw new Error('Connection is closed.')
      await stored.transition(pushId, deviceId, to, at, reason)
      unreadable = 2
      throw new Error('Command timed out')
    },
    async getReceipt (pushId, deviceId) {
      if (unreadable > 0) {
        unreadable--
        throw new Error('Connection is closed.')
      }
      return await stored.getReceipt(pushId, deviceId)
    }
  }
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
  const store = streamReceipts(flaky, { stream, nodeId: 'n1', logger, checkBackoff: { initialMs: 10, maxMs: 20 } })
  // b's transition never reached the store: checked, and no record.
  await assert.rejects(store.transition('p', 'b', 'acked', 30))
  await assert.rejects(store.transition('p', 'a', 'acked', 40))
  assert.ok(await eventually(() => lines.filter((l) => l.event === 'receipt_commit_checked').length === 2, 30_000), 'both failed commits are checked')
  assert.deepEqual(brief(stream.records), ['a:acked:4'])
  assert.equal(stream.records[0]?.at, 40)
  const a = lines.find((l) => l.event === 'receipt_commit_checked' && l.records === 1)
  assert.equal(a?.attempts, 3, 'checked again after the store could not be read')
})
