import { createRequire } from 'node:module'
import { crc32c } from '@node-rs/crc32'
import { writtenRecords } from './encoded-record-message.ts'
import { kafkajs } from './kafkajs-module.ts'
import { encodeRecord, type RecordInput } from './record-encoding.ts'

// kafkajs (2.2, pinned in package.json) encodes a produce request through general-purpose Encoder objects: every
// message is copied with two more fields, every record batch is built in zero-filled buffers that double as they
// grow and are copied whole three times, and its CRC32C runs byte by byte in JavaScript. encodeProduceRequest()
// writes the same bytes (produce request v3, which v4 to v7 reuse) with one exact-size buffer per request and a
// native CRC32C (@node-rs/crc32: SIMD/hardware instructions, prebuilt binaries, no build at install).
//
// It goes in as the export of kafkajs's produce v3 request module, which kafkajs requires only when it first
// builds a produce request. test/unit/produce-request-encoding.test.ts checks that whole requests are identical
// byte for byte with and without it, compressed and not.

/** One partition of a produce request as kafkajs's sendMessages hands it over. */
interface PartitionData {
  readonly partition: number
  readonly firstSequence?: number
  readonly messages: ReadonlyArray<RecordInput & { readonly timestamp?: number | string | null }>
}

interface TopicData {
  readonly topic: string
  readonly partitions: readonly PartitionData[]
}

/** A kafkajs Long (a BigInt in `value`), a number or a numeric string. */
type Int64 = number | string | bigint | { readonly value: bigint }

export interface ProduceRequestInput {
  readonly acks: number
  readonly timeout: number
  readonly transactionalId?: string | null
  readonly producerId?: Int64
  readonly producerEpoch?: number
  readonly compression?: number
  readonly topicData: readonly TopicData[]
}

/** The part of a kafkajs Encoder that kafkajs's request framing reads. */
export interface EncodedRequest {
  readonly buf: Buffer
  readonly buffer: Buffer
  size (): number
}

export interface ProduceRequest {
  readonly apiKey: number
  readonly apiVersion: number
  readonly apiName: string
  expectResponse (): boolean
  encode (): Promise<EncodedRequest>
}

interface Codec { compress (encoder: { buffer: Buffer }): Promise<Buffer> }

const PRODUCE_API_KEY = 0
const MAGIC = 2
const TRANSACTIONAL = 16
const CODEC_MASK = 0x07
/** RecordBatch bytes after the CRC up to the records: attributes .. first sequence, record count. */
const BATCH_BODY_HEAD = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4
/** RecordBatch bytes up to the CRC's end: first offset, length, leader epoch, magic, CRC. */
const BATCH_HEAD = 8 + 4 + 4 + 1 + 4

const REQUEST_MODULE = 'kafkajs/src/protocol/requests/produce/v3/request.js'

function toBigInt (v: Int64): bigint {
  if (typeof v === 'bigint') return BigInt.asIntN(64, v)
  if (typeof v === 'number') return Number.isNaN(v) ? 0n : BigInt.asIntN(64, BigInt(Math.trunc(v)))
  if (typeof v === 'string') return BigInt.asIntN(64, BigInt(v))
  return BigInt.asIntN(64, v.value)
}

/** A partition's record set before framing: the records (compressed or not) and the batch fields around them. */
interface EncodedPartition {
  readonly partition: number
  readonly records: Buffer
  readonly count: number
  readonly firstTimestamp: bigint
  readonly maxTimestamp: bigint
  readonly firstSequence: number
}

async function encodePartition (data: PartitionData, codec: Codec | null): Promise<EncodedPartition> {
  const { messages } = data
  const now = Date.now()
  // As kafkajs: the given timestamps sorted as Array#sort does (as strings), the first and last of them.
  const given: Array<number | string> = []
  for (const m of messages) if (m.timestamp !== null && m.timestamp !== undefined) given.push(m.timestamp)
  given.sort()
  const first: number | string = given.length === 0 ? now : given[0] as number | string
  const max: number | string = given.length === 0 ? now : given[given.length - 1] as number | string
  // Records written beforehand (EncodedRecordMessage) carry no timestamp: delta 0 from now, as below.
  let plain = writtenRecords(messages)
  if (plain === undefined) {
    const parts: Buffer[] = new Array<Buffer>(messages.length)
    let bytes = 0
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as PartitionData['messages'][number]
      // As kafkajs: a missing (or falsy) timestamp is now; a numeric string subtracts as a number.
      const b = encodeRecord(m, i, ((m.timestamp || now) as number) - (first as number))
      parts[i] = b.buf
      bytes += b.buf.length
    }
    plain = Buffer.concat(parts, bytes)
  }
  return {
    partition: data.partition,
    records: codec === null ? plain : await codec.compress({ buffer: plain }),
    count: messages.length,
    firstTimestamp: toBigInt(first),
    maxTimestamp: toBigInt(max),
    firstSequence: data.firstSequence ?? 0
  }
}

/** The produce request v3 of kafkajs, encoded into one buffer. */
export function encodeProduceRequest (input: ProduceRequestInput): ProduceRequest {
  const { acks, timeout, topicData } = input
  const transactionalId = input.transactionalId ?? null
  const producerId = toBigInt(input.producerId ?? -1)
  const producerEpoch = input.producerEpoch ?? 0
  const compression = input.compression ?? 0
  return {
    apiKey: PRODUCE_API_KEY,
    apiVersion: 3,
    apiName: 'Produce',
    expectResponse: () => acks !== 0,
    async encode () {
      const codecs = kafkajs().CompressionCodecs as unknown as Record<number, (() => Codec) | undefined>
      const codec = compression === 0 ? null : codecs[compression]?.() ?? null
      const attributes = (compression & CODEC_MASK) | (transactionalId !== null && transactionalId !== '' ? TRANSACTIONAL : 0)
      const topics: Array<{ readonly name: string, readonly partitions: EncodedPartition[] }> = []
      let size = 2 + (transactionalId === null ? 0 : Buffer.byteLength(transactionalId)) + 2 + 4 + 4
      for (const t of topicData) {
        const partitions: EncodedPartition[] = []
        for (const p of t.partitions) partitions.push(await encodePartition(p, codec))
        topics.push({ name: t.topic, partitions })
        size += 2 + Buffer.byteLength(t.topic) + 4
        for (const p of partitions) size += 4 + 4 + BATCH_HEAD + BATCH_BODY_HEAD + p.records.length
      }
      const buf = Buffer.allocUnsafe(size)
      let at = 0
      if (transactionalId === null) {
        at = buf.writeInt16BE(-1, at)
      } else {
        at = buf.writeInt16BE(Buffer.byteLength(transactionalId), at)
        at += buf.write(transactionalId, at, 'utf8')
      }
      at = buf.writeInt16BE(acks, at)
      at = buf.writeInt32BE(timeout, at)
      at = buf.writeInt32BE(topics.length, at)
      for (const t of topics) {
        at = buf.writeInt16BE(Buffer.byteLength(t.name), at)
        at += buf.write(t.name, at, 'utf8')
        at = buf.writeInt32BE(t.partitions.length, at)
        for (const p of t.partitions) {
          const batchLength = 4 + 1 + 4 + BATCH_BODY_HEAD + p.records.length
          at = buf.writeInt32BE(p.partition, at)
          at = buf.writeInt32BE(8 + 4 + batchLength, at) // the record set's size
          at = buf.writeBigInt64BE(0n, at) // first offset
          at = buf.writeInt32BE(batchLength, at)
          at = buf.writeInt32BE(0, at) // partition leader epoch
          at = buf.writeInt8(MAGIC, at)
          const crcAt = at
          at += 4
          const bodyAt = at
          at = buf.writeInt16BE(attributes, at)
          at = buf.writeInt32BE(p.count - 1, at) // last offset delta
          at = buf.writeBigInt64BE(p.firstTimestamp, at)
          at = buf.writeBigInt64BE(p.maxTimestamp, at)
          at = buf.writeBigInt64BE(producerId, at)
          at = buf.writeInt16BE(producerEpoch, at)
          at = buf.writeInt32BE(p.firstSequence, at)
          at = buf.writeInt32BE(p.count, at)
          at += p.records.copy(buf, at)
          buf.writeUInt32BE(crc32c(buf.subarray(bodyAt, at)), crcAt)
        }
      }
      return { buf, buffer: buf, size: () => size }
    }
  }
}

export type ProduceRequestEncodingState = 'installed' | 'already-installed' | 'too-late'

/**
 * Makes kafkajs encode produce requests with encodeProduceRequest(). Idempotent. 'too-late' when kafkajs built a
 * produce request in this process before: it then keeps its own encoder (the same bytes, more CPU).
 */
export function installProduceRequestEncoding (): ProduceRequestEncodingState {
  const require = createRequire(import.meta.url)
  const path = require.resolve(REQUEST_MODULE)
  const loaded = require.cache[path]
  if (loaded?.exports === encodeProduceRequest) return 'already-installed'
  if (loaded !== undefined) return 'too-late'
  require(REQUEST_MODULE)
  const mod = require.cache[path]
  if (mod === undefined) throw new Error(`${REQUEST_MODULE} did not load`)
  mod.exports = encodeProduceRequest
  return 'installed'
}
