import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { encodeRecord, type RecordInput } from '../../src/kafka/record-encoding.ts'

// The lean record encoder must write exactly the bytes kafkajs writes (whole produce requests are compared in
// produce-request-encoding.test.ts).

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
    assert.ok(encodeRecord({ ...input, offsetDelta: 0, timestampDelta: 0 }, input.offsetDelta, input.timestampDelta).buffer.equals(kafkajsRecord(input).buffer), `${name}, deltas given apart`)
  }
})
