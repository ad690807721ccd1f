// One Kafka record (RecordBatch v2 record, the one produce requests v3 to v7 carry), written into one buffer of the
// exact size. kafkajs's own record encoder goes through general-purpose Encoder objects: one zero-filled 512-byte
// buffer per record and one per header, an array and a Buffer per varint, a Long per timestamp delta; with the five
// headers of an uplink that was most of the CPU a node spent shipping. ./produce-request-encoding.ts uses this one.

/** What kafkajs's produce request hands its record encoder (a producer message plus the two deltas). */
export interface RecordInput {
  readonly offsetDelta?: number
  readonly timestampDelta?: number
  readonly key?: Buffer | string | null
  readonly value: Buffer | string | null
  readonly headers?: Readonly<Record<string, Buffer | string | ReadonlyArray<Buffer | string> | undefined>>
}

/** The part of a kafkajs Encoder the record batch reads: `buf` (checked to be a Buffer) and `buffer` (copied). */
export interface EncodedRecord {
  readonly buf: Buffer
  readonly buffer: Buffer
}

/** ASCII strings up to this length are copied byte by byte, which beats a call into C++. */
export const SHORT = 64

export const zigZag32 = (v: number): number => ((v << 1) ^ (v >> 31)) >>> 0

export function sizeOfUVarInt (v: number): number {
  let n = 1
  while (v >= 0x80) {
    v = Math.floor(v / 128)
    n++
  }
  return n
}

/** Zig-zag of a 64-bit integer given as a safe JS number, as an unsigned number (exact below 2^53). */
const zigZag64 = (v: number): number => v >= 0 ? v * 2 : -v * 2 - 1

export function writeUVarInt (buf: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v % 128) | 0x80
    v = Math.floor(v / 128)
  }
  buf[at++] = v
  return at
}

const sizeOfVarInt32 = (v: number): number => sizeOfUVarInt(zigZag32(v))

function bytesOf (v: Buffer | string | null | undefined): Buffer | string | null {
  if (v === null || v === undefined) return null
  return Buffer.isBuffer(v) ? v : String(v)
}

const lengthOf = (v: Buffer | string | null): number => v === null ? -1 : Buffer.isBuffer(v) ? v.length : Buffer.byteLength(v)

/** A length-prefixed byte string (length as zig-zag varint; -1 and nothing for null). */
export function writeBytes (buf: Buffer, at: number, v: Buffer | string | null, length: number): number {
  at = writeUVarInt(buf, at, zigZag32(length))
  if (v === null) return at
  if (Buffer.isBuffer(v)) v.copy(buf, at)
  else if (length === v.length && length <= SHORT) for (let i = 0; i < length; i++) buf[at + i] = v.charCodeAt(i)
  else buf.write(v, at, length, 'utf8')
  return at + length
}

/** Encodes one record exactly as kafkajs 2.2's record v0 encoder does; the deltas default to the input's. */
export function encodeRecord (input: RecordInput, offsetDelta = input.offsetDelta ?? 0, delta = input.timestampDelta ?? 0): EncodedRecord {
  const timestampDelta = zigZag64(delta)
  if (!Number.isSafeInteger(timestampDelta)) throw new RangeError(`timestamp delta out of range: ${delta}`)
  const key = bytesOf(input.key)
  const value = bytesOf(input.value)
  const keyLength = lengthOf(key)
  const valueLength = lengthOf(value)

  // Header keys and values alternate in `parts`, their byte lengths in `lengths`.
  const parts: Array<Buffer | string | null> = []
  const lengths: number[] = []
  const headers = input.headers ?? {}
  for (const k of Object.keys(headers)) {
    const v = headers[k]
    if (Array.isArray(v)) {
      for (const item of v as ReadonlyArray<Buffer | string>) {
        const b = bytesOf(item)
        parts.push(k, b)
        lengths.push(Buffer.byteLength(k), lengthOf(b))
      }
    } else {
      const b = bytesOf(v as Buffer | string | undefined)
      parts.push(k, b)
      lengths.push(Buffer.byteLength(k), lengthOf(b))
    }
  }
  const headerCount = parts.length / 2
  let headersSize = sizeOfVarInt32(headerCount)
  for (const l of lengths) headersSize += sizeOfVarInt32(l) + Math.max(0, l)

  const body = 1 + sizeOfUVarInt(timestampDelta) + sizeOfVarInt32(offsetDelta) +
    sizeOfVarInt32(keyLength) + Math.max(0, keyLength) +
    sizeOfVarInt32(valueLength) + Math.max(0, valueLength) + headersSize
  const buf = Buffer.allocUnsafe(sizeOfVarInt32(body) + body)
  let at = writeUVarInt(buf, 0, zigZag32(body))
  buf[at++] = 0 // attributes: none are used per record
  at = writeUVarInt(buf, at, timestampDelta)
  at = writeUVarInt(buf, at, zigZag32(offsetDelta))
  at = writeBytes(buf, at, key, keyLength)
  at = writeBytes(buf, at, value, valueLength)
  at = writeUVarInt(buf, at, zigZag32(headerCount))
  for (let i = 0; i < parts.length; i++) at = writeBytes(buf, at, parts[i] as Buffer | string | null, lengths[i] as number)
  return { buf, buffer: buf }
}
