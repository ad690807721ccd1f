import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { EncodedRecordMessage, writtenRecords } from '../../src/kafka/encoded-record-message.ts'
import { assignPartitions, keyPartitioner } from '../../src/kafka/partition-coverage.ts'
import { encodeProduceRequest } from '../../src/kafka/produce-request-encoding.ts'
import type { RecordInput } from '../../src/kafka/record-encoding.ts'
import { toKafkaMessage } from '../../src/uplink/kafka-shipper.ts'
import { decodeRecords, encodeSpoolRecord, FramedRecord, payloadLength, plainRecord, type SpoolRecord } from '../../src/uplink/spool-format.ts'
import { uplinkRecordMessages } from '../../src/uplink/uplink-kafka-records.ts'

// Uplinks written as Kafka records by the shipper must be the records kafkajs writes for toKafkaMessage(), in the
// partitions its partitioner picks, each partition's records in spool order.

const require = createRequire(import.meta.url)
const kafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: RecordInput) => { buffer: Buffer }

const TOPIC = 'telemetry'
const PARTITIONS = 12

function record (seq: number): SpoolRecord {
  const device = seq % 5 === 0 ? `gerät-ü-${seq % 3}` : `dev-${seq % 9}`
  return {
    seq,
    msgId: `1b4e28ba-2fa1-11d2-883f-${String(seq).padStart(12, '0')}`,
    deviceId: device,
    topic: `devices/${device}/telemetry${seq % 7 === 0 ? '/ü'.repeat(40) : ''}`,
    kind: 'telemetry',
    qos: 1,
    nodeId: 'node-1',
    receivedAt: 1_700_000_000_000 + seq * 37,
    traceId: 'a'.repeat(32),
    payload: Buffer.alloc(seq % 11 === 0 ? 20_000 + seq : 10 + (seq % 200), seq)
  }
}

const records = Array.from({ length: 300 }, (_, i) => record(i + 1000))

test('uplinks are written as the records kafkajs writes, in its partitions, in spool order per partition', { timeout: 10_000 }, () => {
  const messages = uplinkRecordMessages(records, keyPartitioner(TOPIC, PARTITIONS))
  assert.equal(messages.length, records.length)
  const expected = assignPartitions(TOPIC, records.map(toKafkaMessage), PARTITIONS)
  for (let p = 0; p < PARTITIONS; p++) {
    const want = records.filter((_, i) => expected[i]?.partition === p)
    const got = messages.filter((m) => m.partition === p)
    assert.equal(got.length, want.length, `partition ${p}`)
    got.forEach((m, i) => {
      assert.equal(m.offsetDelta, i)
      const kafkajs = kafkajsRecord({ ...toKafkaMessage(want[i] as SpoolRecord), offsetDelta: i, timestampDelta: 0 }).buffer
      assert.ok(m.value.equals(kafkajs), `partition ${p}, record ${i}`)
    })
    // One partition's records lie one after the other in one buffer: the request takes them without a copy.
    if (got.length > 1) assert.equal(writtenRecords(got)?.buffer, got[0]?.value.buffer)
  }
})

test('a produce request of written uplinks is the request of their messages', { timeout: 10_000 }, async () => {
  const messages = uplinkRecordMessages(records, keyPartitioner(TOPIC, PARTITIONS))
  const plain = assignPartitions(TOPIC, records.map(toKafkaMessage), PARTITIONS)
  const partitions = [...new Set(messages.map((m) => m.partition))].sort((a, b) => a - b)
  const request = (of: ReadonlyArray<{ partition?: number }>): Promise<{ buffer: Buffer }> => encodeProduceRequest({
    acks: -1,
    timeout: 30_000,
    producerId: 4711,
    producerEpoch: 2,
    topicData: [{ topic: TOPIC, partitions: partitions.map((partition, i) => ({ partition, firstSequence: i * 1000, messages: of.filter((m) => m.partition === partition) as RecordInput[] })) }]
  }).encode()
  const realNow = Date.now
  Date.now = () => 1_700_000_123_456
  try {
    assert.ok((await request(messages)).buffer.equals((await request(plain)).buffer))
  } finally {
    Date.now = realNow
  }
})

test('written records out of their offset order, or mixed with plain messages, are refused', { timeout: 10_000 }, () => {
  const [a, b] = uplinkRecordMessages([record(1), record(10)], () => 0)
  assert.ok(a !== undefined && b !== undefined)
  assert.equal(writtenRecords([{ value: 'x' }]), undefined, 'plain messages are encoded as they are')
  assert.throws(() => writtenRecords([b, a]), { code: 'IOT_ERR_INTERNAL' })
  assert.throws(() => writtenRecords([a, { value: 'x' }]), { code: 'IOT_ERR_INTERNAL' })
  // Records of separate buffers are joined.
  const apart = new EncodedRecordMessage(Buffer.from(b.value), 0, 1)
  assert.ok(writtenRecords([a, apart])?.equals(Buffer.concat([a.value, b.value])))
})

/** The records as the spool reader hands them out: binary frames, not decoded. */
function framed (of: readonly SpoolRecord[]): SpoolRecord[] {
  const frames = Buffer.concat(of.map((r) => encodeSpoolRecord(r.seq, r)))
  const out: SpoolRecord[] = []
  decodeRecords('binary', frames, { record: (r) => out.push(r), unreadable: () => assert.fail('a frame is unreadable') }, 0, true)
  return out
}

test('framed spool records are written as the same Kafka records as decoded ones, with the same fields', { timeout: 10_000 }, () => {
  const frames = framed(records)
  assert.ok(frames.every((r) => r instanceof FramedRecord), 'the framed path is taken')
  frames.forEach((r, i) => assert.deepEqual(plainRecord(r), records[i]))
  const fromFrames = uplinkRecordMessages(frames, keyPartitioner(TOPIC, PARTITIONS))
  const decoded = uplinkRecordMessages(records, keyPartitioner(TOPIC, PARTITIONS))
  assert.equal(fromFrames.length, decoded.length)
  fromFrames.forEach((m, i) => {
    const d = decoded[i] as EncodedRecordMessage
    assert.equal(m.partition, d.partition)
    assert.equal(m.offsetDelta, d.offsetDelta)
    assert.ok(m.value.equals(d.value), `record ${i}`)
  })
  // Received-at of any length of digits, and empty strings.
  const odd = framed([{ ...record(3), receivedAt: 0, traceId: '' }, { ...record(4), receivedAt: 9, nodeId: '' }, { ...record(5), receivedAt: 10 ** 15 }])
  const want = [{ ...record(3), receivedAt: 0, traceId: '' }, { ...record(4), receivedAt: 9, nodeId: '' }, { ...record(5), receivedAt: 10 ** 15 }]
  uplinkRecordMessages(odd, () => 0).forEach((m, i) => {
    const kafkajs = kafkajsRecord({ ...toKafkaMessage(want[i] as SpoolRecord), offsetDelta: i, timestampDelta: 0 }).buffer
    assert.ok(m.value.equals(kafkajs), `odd record ${i}`)
  })
  assert.equal(payloadLength(frames[10] as SpoolRecord), (records[10] as SpoolRecord).payload.length)
})
