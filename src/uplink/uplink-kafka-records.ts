import { EncodedRecordMessage } from '../kafka/encoded-record-message.ts'
import { SHORT, sizeOfUVarInt, writeBytes, writeUVarInt, zigZag32 } from '../kafka/record-encoding.ts'
import { FIELD, FramedRecord, payloadLength, type SpoolRecord } from './spool-format.ts'

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

// A FramedRecord (what the spool reader hands out) is written from its frame's bytes: its strings are UTF-8 there
// already, with their byte lengths, so nothing is decoded or measured again.

const { msgId: MSG_ID, deviceId: DEVICE_ID, topic: TOPIC, kind: KIND, nodeId: NODE_ID, traceId: TRACE_ID } = FIELD

/** Digits of a non-negative integer (received-at, a time in ms), as String() writes it. */
function decimalLength (v: number): number {
  let n = 1
  while (v >= 10) {
    v = Math.floor(v / 10)
    n++
  }
  return n
}

function writeDecimal (buf: Buffer, at: number, v: number, length: number): number {
  for (let i = length - 1; i >= 0; i--) {
    buf[at + i] = 0x30 + (v % 10)
    v = Math.floor(v / 10)
  }
  return at + length
}

/** A length-prefixed byte string copied from `src` (short ones byte by byte, which beats a call into C++). */
function copyBytes (buf: Buffer, at: number, src: Buffer, start: number, length: number): number {
  at = writeUVarInt(buf, at, zigZag32(length))
  if (length <= SHORT) for (let i = 0; i < length; i++) buf[at + i] = src[start + i] as number
  else src.copy(buf, at, start, start + length)
  return at + length
}

/** The body size of a framed record's Kafka record (as measure() computes it for the decoded record). */
function framedBody (r: FramedRecord, offsetDelta: number): number {
  return 1 + 1 + varIntSize(offsetDelta) + fieldSize(r.fieldLength(DEVICE_ID)) + fieldSize(payloadLength(r)) + HEADERS_FIXED +
    fieldSize(r.fieldLength(TOPIC)) + fieldSize(r.fieldLength(NODE_ID)) + fieldSize(decimalLength(r.receivedAt)) +
    fieldSize(r.fieldLength(TRACE_ID)) + fieldSize(r.fieldLength(MSG_ID))
}

/** Header `i` of HEADER_KEYS with a value copied from `src`. */
function copyHeader (buf: Buffer, at: number, i: number, src: Buffer, start: number, length: number): number {
  const key = HEADER_KEYS[i] as Buffer
  return copyBytes(buf, copyBytes(buf, at, key, 0, key.length), src, start, length)
}

function writeFramed (buf: Buffer, at: number, r: FramedRecord, body: number, offsetDelta: number): number {
  const src = r.buf
  // The frame's string fields lie one after the other: msgId, deviceId, topic, kind, nodeId, traceId, then the payload.
  const msgId = r.fieldStart(MSG_ID)
  const deviceId = msgId + r.fieldLength(MSG_ID)
  const topic = deviceId + r.fieldLength(DEVICE_ID)
  const nodeId = topic + r.fieldLength(TOPIC) + r.fieldLength(KIND)
  const traceId = nodeId + r.fieldLength(NODE_ID)
  const payload = traceId + r.fieldLength(TRACE_ID)
  at = writeUVarInt(buf, at, zigZag32(body))
  buf[at++] = 0 // attributes
  buf[at++] = 0 // timestamp delta
  at = writeUVarInt(buf, at, zigZag32(offsetDelta))
  at = copyBytes(buf, at, src, deviceId, topic - deviceId)
  at = copyBytes(buf, at, src, payload, r.end - payload)
  at = writeUVarInt(buf, at, zigZag32(HEADER_KEYS.length))
  at = copyHeader(buf, at, 0, src, topic, r.fieldLength(TOPIC))
  at = copyHeader(buf, at, 1, src, nodeId, traceId - nodeId)
  const key = HEADER_KEYS[2] as Buffer
  const digits = decimalLength(r.receivedAt)
  at = writeDecimal(buf, writeUVarInt(buf, copyBytes(buf, at, key, 0, key.length), zigZag32(digits)), r.receivedAt, digits)
  at = copyHeader(buf, at, 3, src, traceId, payload - traceId)
  return copyHeader(buf, at, 4, src, msgId, deviceId - msgId)
}

/**
 * The uplinks as producer messages, partition by partition, each partition's records written one after the other
 * into one buffer in spool order (so a device's uplinks keep their order). `partitionOf` maps a device id to its
 * partition, as the producer's partitioner would.
 */
export function uplinkRecordMessages (records: readonly SpoolRecord[], partitionOf: (key: string) => number): EncodedRecordMessage[] {
  /** Per partition: the records (framed, or measured), their record body sizes, and the bytes they take. */
  const byPartition = new Map<number, { items: Array<Measured | FramedRecord>, bodies: number[], bytes: number }>()
  for (const record of records) {
    const partition = partitionOf(record.deviceId)
    let list = byPartition.get(partition)
    if (list === undefined) {
      list = { items: [], bodies: [], bytes: 0 }
      byPartition.set(partition, list)
    }
    const offsetDelta = list.items.length
    let body: number
    if (record instanceof FramedRecord) {
      body = framedBody(record, offsetDelta)
      list.items.push(record)
    } else {
      const m = measure(record, partition, offsetDelta)
      body = m.body
      list.items.push(m)
    }
    list.bodies.push(body)
    list.bytes += varIntSize(body) + body
  }
  const messages: EncodedRecordMessage[] = []
  for (const [partition, { items, bodies, bytes }] of byPartition) {
    const buf = Buffer.allocUnsafe(bytes)
    let at = 0
    for (let i = 0; i < items.length; i++) {
      const start = at
      const item = items[i] as Measured | FramedRecord
      at = item instanceof FramedRecord ? writeFramed(buf, at, item, bodies[i] as number, i) : writeRecord(buf, at, item, i)
      messages.push(new EncodedRecordMessage(buf.subarray(start, at), partition, i))
    }
  }
  return messages
}
