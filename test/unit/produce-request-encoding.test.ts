import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { CompressionTypes } from 'kafkajs'
import { installProduceRequestEncoding } from '../../src/kafka/produce-request-encoding.ts'
import { setUpCompression } from '../../src/kafka/compression.ts'

// The lean produce request encoder must write exactly the bytes kafkajs writes, for whole requests framed as
// kafkajs frames them: several topics and partitions, with and without compression, idempotent and transactional.

const require = createRequire(import.meta.url)
const REQUEST = 'kafkajs/src/protocol/requests/produce/v3/request.js'
const V7 = 'kafkajs/src/protocol/requests/produce/v7/request.js'
const FRAME = 'kafkajs/src/protocol/request.js'

type Encoded = { buffer: Buffer }
interface Request { apiKey: number, apiVersion: number, apiName: string, expectResponse: () => boolean, encode: () => Promise<Encoded> }
type RequestModule = (args: object) => Request
const frame = require(FRAME) as (args: object) => Promise<Encoded>

const uplink = (i: number): object => ({
  key: `dev-${i % 7}`,
  value: Buffer.alloc(100 + (i % 13), i),
  headers: { 'mqtt-topic': `devices/dev-${i % 7}/telemetry`, 'node-id': 'node-1', 'received-at': String(1_700_000_000_000 + i), 'trace-id': 'a'.repeat(32), 'msg-id': `m-${i}` }
})
const stamped = (i: number): object => ({ key: null, value: `v${i}`, timestamp: String(1_700_000_000_000 + ((i * 7919) % 1000)) })
const mixed = (i: number): object => ({ key: 'gerät-ü', value: i % 2 === 0 ? null : '{"t":"überall 🚀"}', headers: { multi: ['a', Buffer.from([1, 2, 3])] }, ...(i % 3 === 0 && { timestamp: 1_700_000_000_000 + i }) })

const requests = [
  {
    name: 'idempotent, two topics, several partitions',
    args: {
      acks: -1,
      timeout: 30_000,
      producerId: { value: 4711n },
      producerEpoch: 3,
      topicData: [
        { topic: 'telemetry', partitions: Array.from({ length: 5 }, (_, p) => ({ partition: p * 2, firstSequence: p * 100, messages: Array.from({ length: 40 + p }, (_, i) => uplink(i + p)) })) },
        { topic: 'tëlemetry.other', partitions: [{ partition: 0, firstSequence: 0, messages: Array.from({ length: 30 }, (_, i) => stamped(i)) }] }
      ]
    }
  },
  {
    name: 'transactional, timestamps given on some messages, null values',
    args: { acks: 1, timeout: 5000, transactionalId: 'tx-1', producerId: { value: -1n }, producerEpoch: 0, topicData: [{ topic: 't', partitions: [{ partition: 3, firstSequence: 9, messages: Array.from({ length: 20 }, (_, i) => mixed(i)) }] }] }
  },
  { name: 'no producer id given (kafkajs defaults)', args: { acks: 0, timeout: 100, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [uplink(1)] }] }] } }
]

async function encodeAll (request: RequestModule, compression: number): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (const { args } of requests) {
    // The timestamp of messages without one is Date.now(): fixed here so that both encoders see the same.
    const realNow = Date.now
    Date.now = () => 1_700_000_123_456
    try {
      const r = request({ ...args, compression })
      out.push((await frame({ correlationId: 42, clientId: 'pushline', request: r })).buffer)
      assert.equal(r.expectResponse(), args.acks !== 0)
    } finally {
      Date.now = realNow
    }
  }
  return out
}

test('produce requests are encoded byte for byte as kafkajs encodes them, compressed or not', { timeout: 20_000 }, async () => {
  // gzip output holds no timestamp, so compressed bytes compare too (the level must be the same on both sides).
  setUpCompression('gzip', 1)
  const compressions = [CompressionTypes.None, CompressionTypes.GZIP, CompressionTypes.Snappy]
  // kafkajs's own encoder first (v4 to v7 capture v3's module when they load), then reload them with ours.
  const kafkajsRequest = require(REQUEST) as RequestModule
  const before = await Promise.all(compressions.map((c) => encodeAll(kafkajsRequest, c)))
  const v7Before = await encodeAll(require(V7) as RequestModule, CompressionTypes.None)
  assert.equal(installProduceRequestEncoding(), 'too-late', 'kafkajs built a produce request already')
  for (const v of [3, 4, 5, 6, 7]) delete require.cache[require.resolve(`kafkajs/src/protocol/requests/produce/v${v}/request.js`)]
  assert.equal(installProduceRequestEncoding(), 'installed')
  assert.equal(installProduceRequestEncoding(), 'already-installed')
  const ours = require(REQUEST) as RequestModule
  assert.notEqual(ours, kafkajsRequest)
  for (const [c, compression] of compressions.entries()) {
    const after = await encodeAll(ours, compression)
    for (const [i, { name }] of requests.entries()) assert.ok((after[i] as Buffer).equals(before[c]?.[i] as Buffer), `${name}, compression ${compression}`)
  }
  const v7After = await encodeAll(require(V7) as RequestModule, CompressionTypes.None)
  for (const [i, { name }] of requests.entries()) assert.ok((v7After[i] as Buffer).equals(v7Before[i] as Buffer), `${name}, produce v7`)
})
