import { EncodedRecordMessage } from '../kafka/encoded-record-message.ts'
import { SHORT, sizeOfUVarInt, writeBytes, writeUVarInt, zigZag32 } from '../kafka/record-encoding.ts'
import type { SpoolRecord } from './spool-format.ts'

// Spooled uplinks as Kafka records, written straight from the spool records into one buffer per partition: no
// message or headers object per uplink, no generic record encoder. The bytes are those kafkajs writes for
// toKafkaMessage() (key: device id; value: payload; headers mqtt-topic, node-id, received-at, trace-id, msg-id, in
// this order) at timestamp delta 0; test/unit/uplink-kafka-records.test.ts compares them.

const HEADER_KEYS = ['mqtt-topic', 'node-id', 'received-at', 'trace-id', 'msg-id'].map((k) => Buffer.from(k))

/** UTF-8 byte length of a string; short ASCII ones without a native call. */
function utf8Length (s: string): number {
  if (s.length > SHORT) return Buffer.byteLength(s)
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s)
  return s.length
}

const varIntSize = (v: number): number => sizeOfUVarInt(zigZag32(v))
/** A length-prefixed byte string (length as zig-zag varint). */
const fieldSize = (length: number): number => varIntSize(length) + length

/** One uplink's strings with their byte lengths, measured once for the size and the write. */
interface Measured {
  readonly record: SpoolRecord
  readonly partition: number
  readonly receivedAt: string
  readonly lengths: readonly [number, number, number, number, number, number]
  /** The record's body size (after its length prefix). */
  readonly body: number
}

const HEADERS_FIXED = varIntSize(HEADER_KEYS.length) + HEADER_KEYS.reduce((n, k) => n + fieldSize(k.length), 0)

function measure (record: SpoolRecord, partition: number, offsetDelta: number): Measured {
  const receivedAt = String(record.receivedAt)
  const lengths = [utf8Length(record.deviceId), utf8Length(record.topic), utf8Length(record.nodeId), receivedAt.length, utf8Length(record.traceId), utf8Length(record.msgId)] as const
  // attributes, timestamp delta 0, offset delta, key, value, headers
  let body = 1 + 1 + varIntSize(offsetDelta) + fieldSize(lengths[0]) + fieldSize(record.payload.length) + HEADERS_FIXED
  for (let i = 1; i < lengths.length; i++) body += fieldSize(lengths[i] as number)
  return { record, partition, receivedAt, lengths, body }
}

/** Header `i` of HEADER_KEYS with its value. */
function writeHeader (buf: Buffer, at: number, i: number, value: string, length: number): number {
  const key = HEADER_KEYS[i] as Buffer
  return writeBytes(buf, writeBytes(buf, at, key, key.length), value, length)
}

function writeRecord (buf: Buffer, at: number, m: Measured, offsetDelta: number): number {
  const { record: r, lengths } = m
  at = writeUVarInt(buf, at, zigZag32(m.body))
  buf[at++] = 0 // attributes
  buf[at++] = 0 // timestamp delta
  at = writeUVarInt(buf, at, zigZag32(offsetDelta))
  at = writeBytes(buf, at, r.deviceId, lengths[0])
  at = writeBytes(buf, at, r.payload, r.payload.length)
  at = writeUVarInt(buf, at, zigZag32(HEADER_KEYS.length))
  at = writeHeader(buf, at, 0, r.topic, lengths[1])
  at = writeHeader(buf, at, 1, r.nodeId, lengths[2])
  at = writeHeader(buf, at, 2, m.receivedAt, lengths[3])
  at = writeHeader(buf, at, 3, r.traceId, lengths[4])
  return writeHeader(buf, at, 4, r.msgId, lengths[5])
}

/**
 * The uplinks as producer messages, partition by partition, each partition's records written one after the other
 * into one buffer in spool order (so a device's uplinks keep their order). `partitionOf` maps a device id to its
 * partition, as the producer's partitioner would.
 */
export function uplinkRecordMessages (records: readonly SpoolRecord[], partitionOf: (key: string) => number): EncodedRecordMessage[] {
  const byPartition = new Map<number, Measured[]>()
  const sizes = new Map<number, number>()
  for (const record of records) {
    const partition = partitionOf(record.deviceId)
    let list = byPartition.get(partition)
    if (list === undefined) {
      list = []
      byPartition.set(partition, list)
    }
    const m = measure(record, partition, list.length)
    list.push(m)
    sizes.set(partition, (sizes.get(partition) ?? 0) + varIntSize(m.body) + m.body)
  }
  const messages: EncodedRecordMessage[] = []
  for (const [partition, list] of byPartition) {
    const buf = Buffer.allocUnsafe(sizes.get(partition) as number)
    let at = 0
    for (let i = 0; i < list.length; i++) {
      const start = at
      at = writeRecord(buf, at, list[i] as Measured, i)
      messages.push(new EncodedRecordMessage(buf.subarray(start, at), partition, i))
    }
  }
  return messages
}
