import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { decodeReceiptRecord, encodeReceiptRecord, receiptKafkaMessage, toSpoolEntry, type ReceiptRecord } from '../../src/push/receipt-record.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { openFileSpool } from '../../src/uplink/file-spool.ts'

const record: ReceiptRecord = { pushId: 'p-m1x-1a2b3c4d', deviceId: 'dev-1', state: 'delivered', id: 42, at: 1_733_400_000_123, nodeId: 'node-a', traceId: 'a'.repeat(32) }

test('a receipt record is JSON with every key of the contract, in the contract\'s order', () => {
  // Keys given in another order come out in the contract's order.
  const shuffled = { traceId: record.traceId, at: record.at, nodeId: record.nodeId, id: record.id, state: record.state, deviceId: record.deviceId, pushId: record.pushId }
  assert.equal(encodeReceiptRecord(shuffled).toString(),
    '{"pushId":"p-m1x-1a2b3c4d","deviceId":"dev-1","state":"delivered","id":42,"at":1733400000123,"nodeId":"node-a","traceId":"' + 'a'.repeat(32) + '"}')
  // Without a message id or trace id the keys are there, null.
  assert.equal(encodeReceiptRecord({ ...record, state: 'failed', id: null, traceId: null }).toString(),
    '{"pushId":"p-m1x-1a2b3c4d","deviceId":"dev-1","state":"failed","id":null,"at":1733400000123,"nodeId":"node-a","traceId":null}')
})

test('a receipt record reads back as it was written', () => {
  assert.deepEqual(decodeReceiptRecord(encodeReceiptRecord(record)), record)
  const bare = { ...record, id: null, traceId: null }
  assert.deepEqual(decodeReceiptRecord(encodeReceiptRecord(bare).toString()), bare)
  // Device ids and trace ids with characters JSON escapes survive.
  const odd = { ...record, deviceId: 'dév"\\\n', traceId: 'x\u2028y' }
  assert.deepEqual(decodeReceiptRecord(encodeReceiptRecord(odd)), odd)
})

test('a value that is not a receipt record is refused with IOT_ERR_VALIDATION naming what is wrong', () => {
  const json = (o: Record<string, unknown>): string => JSON.stringify({ ...record, ...o })
  const cases: Array<[string, RegExp]> = [
    ['not json', /not JSON/],
    ['[1]', /not a JSON object/],
    ['null', /not a JSON object/],
    [json({ pushId: '' }), /pushId/],
    [json({ deviceId: 7 }), /deviceId/],
    [json({ nodeId: undefined }), /nodeId/],
    [json({ state: 'read' }), /state is not one of queued, sent, delivered, acked, expired, failed/],
    [json({ id: 0 }), /id is neither null/],
    [json({ id: '42' }), /id is neither null/],
    [json({ at: 1.5 }), /at is not epoch ms/],
    [json({ at: -1 }), /at is not epoch ms/],
    [json({ traceId: 5 }), /traceId/]
  ]
  for (const [value, why] of cases) {
    assert.throws(() => decodeReceiptRecord(value), (err: unknown) => isPushlineError(err) && err.code === 'IOT_ERR_VALIDATION' && why.test(err.message), value)
  }
})

test('a receipt record goes through the spool unchanged and becomes a Kafka record keyed by device id, without headers', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-receipt-spool-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const spool = await openFileSpool({ dir, fsync: 'always' })
  t.after(() => spool.close())
  const records = [record, { ...record, state: 'acked' as const, at: record.at + 1 }, { ...record, deviceId: 'dev-2', state: 'failed' as const, id: null, traceId: null }]
  for (const r of records) await spool.append(toSpoolEntry(r))
  const batch = await spool.reader().read({ maxRecords: 10, maxBytes: 1 << 20 })
  assert.equal(batch?.records.length, 3)
  const messages = (batch?.records ?? []).map(receiptKafkaMessage)
  assert.deepEqual(messages.map((m) => m.key), ['dev-1', 'dev-1', 'dev-2'])
  assert.deepEqual(messages.map((m) => decodeReceiptRecord(m.value as Buffer)), records)
  assert.ok(messages.every((m) => m.headers === undefined))
})
