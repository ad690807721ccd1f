import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { encodeRecord, installRecordEncoding, type RecordInput } from '../../src/kafka/record-encoding.ts'

// The lean record encoder must write exactly the bytes kafkajs writes: records one by one, and whole produce
// requests (compressed or not) built by kafkajs with it installed.

const require = createRequire(import.meta.url)
type Encoded = { buffer: Buffer }
const kafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: RecordInput) => Encoded

const cases: Array<[string, RecordInput]> = [
  ['an uplink', {
    offsetDelta: 17,
    timestampDelta: 0,
    key: 'dev-1',
    value: Buffer.from([0, 1, 2, 0xff, 0x0a]),
    headers: { 'mqtt-topic': 'devices/dev-1/telemetry', 'node-id': 'node-1', 'received-at': '1700000000000', 'trace-id': 'a'.repeat(32), 'msg-id': '1b4e28ba-2fa1-11d2-883f-0016d3cca427' }
  }],
  ['no key, string value, no headers', { offsetDelta: 0, timestampDelta: 0, key: null, value: 'hello' }],
  ['null value (tombstone)', { offsetDelta: 3, timestampDelta: 5, key: Buffer.from('k'), value: null }],
  ['unicode key, value and header, array header', {
    offsetDelta: 300,
    timestampDelta: 70_000,
    key: 'gerät-ü',
    value: '{"t":"überall 🚀"}',
    headers: { 'x-é': 'ça', multi: ['a', Buffer.from([1, 2, 3])] }
  }],
  ['large payload, offsets and timestamps over several varint bytes', {
    offsetDelta: 99_999,
    timestampDelta: 2 ** 40 + 7,
    key: 'k'.repeat(200),
    value: Buffer.alloc(70_000, 7),
    headers: { h: 'v'.repeat(300) }
  }],
  ['negative timestamp delta', { offsetDelta: 1, timestampDelta: -12_345, key: 'k', value: 'v' }],
  ['empty key and value', { offsetDelta: 0, timestampDelta: 0, key: '', value: Buffer.alloc(0), headers: {} }]
]

test('records are encoded byte for byte as kafkajs encodes them', { timeout: 10_000 }, () => {
  for (const [name, input] of cases) {
    assert.ok(encodeRecord(input).buffer.equals(kafkajsRecord(input).buffer), name)
  }
})

test('kafkajs produce requests are identical with the lean encoder installed, with and without gzip', { timeout: 10_000 }, async () => {
  const requestPath = 'kafkajs/src/protocol/requests/produce/v3/request.js'
  const messages = Array.from({ length: 50 }, (_, i) => cases[i % cases.length]?.[1] as RecordInput)
    .map(({ key, value, headers }) => ({ key, value, headers, timestamp: '1700000000000' }))
  const produce = async (compression: number): Promise<Buffer> => {
    const request = require(requestPath) as (args: object) => { encode: () => Promise<Encoded> }
    const topicData = [{ topic: 't', partitions: [{ partition: 0, firstSequence: 5, messages }, { partition: 3, firstSequence: 0, messages: messages.slice(7) }] }]
    return (await request({ acks: -1, timeout: 30_000, compression, topicData }).encode()).buffer
  }
  // kafkajs's own encoder first (the request module captures the record encoder when it loads), then reload.
  const before = { none: await produce(0), gzip: await produce(1) }
  assert.equal(installRecordEncoding(), 'too-late', 'a produce request was built already')
  delete require.cache[require.resolve(requestPath)]
  assert.equal(installRecordEncoding(), 'installed')
  assert.equal(installRecordEncoding(), 'already-installed')
  assert.ok((await produce(0)).equals(before.none), 'uncompressed produce request')
  // gzip output holds no timestamp (kafkajs uses zlib defaults), so the compressed bytes compare too.
  assert.ok((await produce(1)).equals(before.gzip), 'gzip produce request')
})
