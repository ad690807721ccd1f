import { crc32 } from 'node:zlib'
import type { Uplink } from './uplink.ts'

// How records are laid out in spool segment files. Two formats, told apart by the file name:
//
//   seg-<first seq>.spool  (written now)  8-byte file header "PLSP" u16 version=2 u16 0, then frames:
//       u32 body length | u32 CRC-32 of (length field + body) | body
//       body = u64 seq | u64 receivedAt | u8 qos | 6 x u16 byte lengths | msgId deviceId topic kind nodeId traceId
//              (UTF-8) | payload (the rest of the body, raw bytes)
//   seg-<first seq>.jsonl  (read only: spools written before the binary format) one JSON object per line,
//       payload in base64.
//
// All integers are big-endian. The CRC covers the length field too, so a damaged length is caught like a damaged
// body. A frame is read with a few integer reads and one CRC over bytes already in memory; the payload is handed
// on as a slice of the read buffer, never copied or re-encoded.

/** One spooled record as the reader hands it out. `kind` is a plain string, so other record kinds fit. */
export interface SpoolRecord {
  readonly seq: number
  readonly msgId: string
  readonly deviceId: string
  readonly topic: string
  readonly kind: Uplink['kind']
  readonly qos: Uplink['qos']
  readonly nodeId: string
  readonly receivedAt: number
  readonly traceId: string
  readonly payload: Buffer
}

export type SegmentFormat = 'binary' | 'jsonl'

export const SEGMENT_FILE = /^seg-(\d{16})\.(spool|jsonl)$/
export const segmentFileName = (startSeq: number, format: SegmentFormat = 'binary'): string =>
  `seg-${String(startSeq).padStart(16, '0')}.${format === 'binary' ? 'spool' : 'jsonl'}`
export const segmentFormat = (name: string): SegmentFormat => name.endsWith('.jsonl') ? 'jsonl' : 'binary'

export const FORMAT_VERSION = 2
export const FILE_HEADER = Buffer.from([0x50, 0x4c, 0x53, 0x50, 0x00, FORMAT_VERSION, 0x00, 0x00]) // "PLSP", 2, 0
/** Bytes before the first record of a segment file. */
export const headerBytes = (format: SegmentFormat): number => format === 'binary' ? FILE_HEADER.length : 0

const FRAME_HEAD = 8 // length + CRC
const FIXED_BODY = 8 + 8 + 1 + 6 * 2
/** Longest body accepted: beyond any MQTT payload (256 MiB) plus its strings; a longer length is damage. */
const MAX_BODY = 268_435_455 + 6 * 65_535 + FIXED_BODY
const TWO_POW_32 = 0x1_0000_0000
const NEWLINE = 0x0a

/** Writes a string of `length` UTF-8 bytes; short ASCII ones (ids, topics) byte by byte, which beats a call into C++. */
function writeString (buf: Buffer, at: number, s: string, length: number): number {
  if (length === s.length && length <= 64) {
    for (let i = 0; i < length; i++) buf[at + i] = s.charCodeAt(i)
  } else {
    buf.write(s, at, length, 'utf8')
  }
  return at + length
}

/** CRC-32 (zlib's) lookup table, for the 4 bytes of a frame's length field. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

/**
 * CRC-32 of a frame's length field and body (the frame of `size` bytes at `at`). The 4 length bytes go through
 * the table here, the body through zlib in one call: half the native calls and buffer views of two zlib calls.
 */
function frameCrc (buf: Buffer, at: number, size: number): number {
  let c = 0xffffffff
  for (let i = at; i < at + 4; i++) c = (CRC_TABLE[(c ^ (buf[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return crc32(buf.subarray(at + FRAME_HEAD, at + size), (c ^ 0xffffffff) >>> 0)
}

const writeU64 = (buf: Buffer, at: number, v: number): void => {
  buf.writeUInt32BE(Math.floor(v / TWO_POW_32), at)
  buf.writeUInt32BE(v % TWO_POW_32, at + 4)
}
const readU64 = (buf: Buffer, at: number): number => buf.readUInt32BE(at) * TWO_POW_32 + buf.readUInt32BE(at + 4)

/** UTF-8 byte length of a field; short ASCII ones (ids, topics) counted here, which beats a call into C++. */
function fieldLength (s: string): number {
  if (s.length > 64) return checkedLength(Buffer.byteLength(s))
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return checkedLength(Buffer.byteLength(s))
  return s.length
}

function checkedLength (l: number): number {
  if (l > 0xffff) throw new RangeError(`spool record field longer than 65535 bytes (${l})`)
  return l
}

/** A frame's buffer with everything but its strings, payload and CRC written (field byte lengths l0 to l5). */
function frameBuffer (seq: number, u: Uplink, l0: number, l1: number, l2: number, l3: number, l4: number, l5: number): Buffer {
  const body = FIXED_BODY + l0 + l1 + l2 + l3 + l4 + l5 + u.payload.length
  const buf = Buffer.allocUnsafe(FRAME_HEAD + body)
  buf.writeUInt32BE(body, 0)
  writeU64(buf, 8, seq)
  writeU64(buf, 16, u.receivedAt)
  buf[24] = u.qos
  buf.writeUInt16BE(l0, 25)
  buf.writeUInt16BE(l1, 27)
  buf.writeUInt16BE(l2, 29)
  buf.writeUInt16BE(l3, 31)
  buf.writeUInt16BE(l4, 33)
  buf.writeUInt16BE(l5, 35)
  return buf
}

/** The payload at `at` (after the strings), then the CRC. */
function finishFrame (buf: Buffer, at: number, u: Uplink): Buffer {
  u.payload.copy(buf, at)
  buf.writeUInt32BE(frameCrc(buf, 0, buf.length), 4)
  return buf
}

/** Writes an ASCII string byte by byte and returns where it ends; -1 at its first other character. */
function writeAscii (buf: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) return -1
    buf[at + i] = c
  }
  return at + s.length
}

/**
 * The frame when all six strings are short ASCII (ids, topics, the node id: the usual case), each read once: its
 * byte length is its length, checked while it is written. Undefined at the first other character.
 */
function asciiFrame (seq: number, u: Uplink): Buffer | undefined {
  const { msgId, deviceId, topic, kind, nodeId, traceId } = u
  if (msgId.length > 64 || deviceId.length > 64 || topic.length > 64 || kind.length > 64 || nodeId.length > 64 || traceId.length > 64) return undefined
  const buf = frameBuffer(seq, u, msgId.length, deviceId.length, topic.length, kind.length, nodeId.length, traceId.length)
  let at = writeAscii(buf, 37, msgId)
  if (at >= 0) at = writeAscii(buf, at, deviceId)
  if (at >= 0) at = writeAscii(buf, at, topic)
  if (at >= 0) at = writeAscii(buf, at, kind)
  if (at >= 0) at = writeAscii(buf, at, nodeId)
  if (at >= 0) at = writeAscii(buf, at, traceId)
  return at < 0 ? undefined : finishFrame(buf, at, u)
}

/** One binary frame for an uplink with its sequence number. Per uplink on the receive path: no arrays, no closures. */
export function encodeSpoolRecord (seq: number, u: Uplink): Buffer {
  const ascii = asciiFrame(seq, u)
  if (ascii !== undefined) return ascii
  const l0 = fieldLength(u.msgId)
  const l1 = fieldLength(u.deviceId)
  const l2 = fieldLength(u.topic)
  const l3 = fieldLength(u.kind)
  const l4 = fieldLength(u.nodeId)
  const l5 = fieldLength(u.traceId)
  const buf = frameBuffer(seq, u, l0, l1, l2, l3, l4, l5)
  let at = writeString(buf, 37, u.msgId, l0)
  at = writeString(buf, at, u.deviceId, l1)
  at = writeString(buf, at, u.topic, l2)
  at = writeString(buf, at, u.kind, l3)
  at = writeString(buf, at, u.nodeId, l4)
  at = writeString(buf, at, u.traceId, l5)
  return finishFrame(buf, at, u)
}

/**
 * The frame at `at`: its byte size when whole and intact, 0 when not all of it is in `buf` yet but may follow
 * (`more` bytes are still to come after `buf`), -1 when damaged.
 */
function frameAt (buf: Buffer, at: number, more: number): number {
  const here = buf.length - at
  if (here < FRAME_HEAD) return here + more >= FRAME_HEAD ? 0 : -1
  const body = buf.readUInt32BE(at)
  if (body < FIXED_BODY || body > MAX_BODY || FRAME_HEAD + body > here + more) return -1
  if (here < FRAME_HEAD + body) return 0
  return frameCrc(buf, at, FRAME_HEAD + body) === buf.readUInt32BE(at + 4) ? FRAME_HEAD + body : -1
}

function decodeFrame (buf: Buffer, at: number, size: number): SpoolRecord {
  const b = at + FRAME_HEAD
  const l0 = buf.readUInt16BE(b + 17)
  const l1 = buf.readUInt16BE(b + 19)
  const l2 = buf.readUInt16BE(b + 21)
  const l3 = buf.readUInt16BE(b + 23)
  const l4 = buf.readUInt16BE(b + 25)
  const l5 = buf.readUInt16BE(b + 27)
  const s0 = b + FIXED_BODY
  const s1 = s0 + l0
  const s2 = s1 + l1
  const s3 = s2 + l2
  const s4 = s3 + l3
  const s5 = s4 + l4
  const end = s5 + l5
  return {
    seq: readU64(buf, b),
    msgId: buf.toString('utf8', s0, s1),
    deviceId: buf.toString('utf8', s1, s2),
    topic: buf.toString('utf8', s2, s3),
    kind: buf.toString('utf8', s3, s4) as Uplink['kind'],
    qos: buf[b + 16] as Uplink['qos'],
    nodeId: buf.toString('utf8', s4, s5),
    receivedAt: readU64(buf, b + 8),
    traceId: buf.toString('utf8', s5, end),
    payload: buf.subarray(end, at + size)
  }
}

/** A frame's string fields, in the order they lie in its body (FramedRecord's field numbers). */
export const FIELD = { msgId: 0, deviceId: 1, topic: 2, kind: 3, nodeId: 4, traceId: 5 } as const

/** Byte offset in a frame's body of the length of string field `i` (FIELD). */
const lengthAt = (body: number, i: number): number => body + 17 + 2 * i

/**
 * A binary frame as a record without decoding it: sequence number, receipt time and QoS are read at once, the
 * strings and the payload only when asked for. The shipper writes Kafka records straight from the frame's bytes
 * (`field()`), so a shipped uplink costs no string or payload object.
 */
export class FramedRecord implements SpoolRecord {
  readonly seq: number
  readonly receivedAt: number
  readonly qos: Uplink['qos']
  /** The buffer that holds the frame; the frame's body starts at `body` and the frame ends at `end`. */
  readonly buf: Buffer
  readonly body: number
  readonly end: number
  /** Where the payload starts in `buf` (it runs to `end`); the shipper counts payload bytes per batch with it. */
  readonly payloadStart: number

  constructor (buf: Buffer, at: number, size: number) {
    const body = at + FRAME_HEAD
    this.buf = buf
    this.body = body
    this.end = at + size
    this.seq = readU64(buf, body)
    this.receivedAt = readU64(buf, body + 8)
    this.qos = buf[body + 16] as Uplink['qos']
    this.payloadStart = this.fieldStart(FIELD.traceId + 1)
  }

  /** Where string field `i` (FIELD) starts in `buf`; 6 is the payload, which follows the last one. */
  fieldStart (i: number): number {
    let at = this.body + FIXED_BODY
    for (let k = 0; k < i; k++) at += this.fieldLength(k)
    return at
  }

  /** UTF-8 byte length of string field `i`. */
  fieldLength (i: number): number {
    const at = lengthAt(this.body, i)
    return ((this.buf[at] as number) << 8) | (this.buf[at + 1] as number)
  }

  private field (i: number): string {
    const start = this.fieldStart(i)
    return this.buf.toString('utf8', start, start + this.fieldLength(i))
  }

  get msgId (): string { return this.field(FIELD.msgId) }
  get deviceId (): string { return this.field(FIELD.deviceId) }
  get topic (): string { return this.field(FIELD.topic) }
  get kind (): Uplink['kind'] { return this.field(FIELD.kind) as Uplink['kind'] }
  get nodeId (): string { return this.field(FIELD.nodeId) }
  get traceId (): string { return this.field(FIELD.traceId) }
  get payload (): Buffer { return this.buf.subarray(this.payloadStart, this.end) }
}

/** Payload bytes of a record, without a view of a framed record's payload. */
export const payloadLength = (r: SpoolRecord): number => r instanceof FramedRecord ? r.end - r.payloadStart : r.payload.length

/** Any record's fields as a plain object (a FramedRecord's are getters, which spreading and JSON leave out). */
export function plainRecord (r: SpoolRecord): Omit<SpoolRecord, 'payload'> & { payload: Buffer } {
  return { seq: r.seq, msgId: r.msgId, deviceId: r.deviceId, topic: r.topic, kind: r.kind, qos: r.qos, nodeId: r.nodeId, receivedAt: r.receivedAt, traceId: r.traceId, payload: r.payload }
}

/** The record of one JSON line of the old format, payload decoded; undefined when the line is not one. */
function decodeLine (line: Buffer): SpoolRecord | undefined {
  try {
    const r = JSON.parse(line.toString('utf8')) as Omit<SpoolRecord, 'payload'> & { payload: string }
    if (typeof r.seq !== 'number' || typeof r.payload !== 'string') return undefined
    return { ...r, payload: Buffer.from(r.payload, 'base64') }
  } catch {
    return undefined
  }
}

export interface DecodeResult {
  /** Bytes of `buf` taken up by whole records and damaged stretches; the rest is an incomplete record. */
  readonly consumed: number
}

export interface DecodeSink {
  record (record: SpoolRecord, bytes: number): void
  /** Bytes that are no record (a damaged frame or line), skipped. */
  unreadable (bytes: number): void
}

/**
 * Decodes the whole records at the start of `buf` (which starts at a record boundary), in order; `more` bytes of
 * the segment follow `buf` (0: `buf` runs to the end of what is committed). A damaged frame is skipped up to the
 * next intact frame in `buf`, or up to one that may be intact once the bytes that follow are read. With `framed`,
 * binary frames are handed on as FramedRecords (over `buf`, not decoded); old-format lines are decoded either way.
 */
export function decodeRecords (format: SegmentFormat, buf: Buffer, sink: DecodeSink, more = 0, framed = false): DecodeResult {
  let at = 0
  if (format === 'jsonl') {
    for (let i = buf.indexOf(NEWLINE); i !== -1; i = buf.indexOf(NEWLINE, at)) {
      const record = decodeLine(buf.subarray(at, i))
      if (record === undefined) sink.unreadable(i - at + 1)
      else sink.record(record, i - at + 1)
      at = i + 1
    }
    return { consumed: at }
  }
  while (at < buf.length) {
    const size = frameAt(buf, at, more)
    if (size === 0) break
    if (size > 0) {
      sink.record(framed ? new FramedRecord(buf, at, size) : decodeFrame(buf, at, size), size)
      at += size
      continue
    }
    // Resynchronise at the next intact frame, or at one that may be intact once more bytes are there.
    let next = at + 1
    while (next < buf.length && frameAt(buf, next, more) < 0) next++
    sink.unreadable(next - at)
    at = next
  }
  return { consumed: at }
}

/**
 * The frames of a buffer this process has just written to a segment (one group commit's write), handed on as
 * FramedRecords without the CRC check: they are whole by construction and were never read back from the disk.
 */
export function writtenFrames (buf: Buffer, sink: Pick<DecodeSink, 'record'>): void {
  for (let at = 0; at < buf.length;) {
    const size = FRAME_HEAD + buf.readUInt32BE(at)
    sink.record(new FramedRecord(buf, at, size), size)
    at += size
  }
}

export interface SegmentScan {
  /** Offset after the last whole, intact record before a torn tail (the file's length when there is none). */
  readonly end: number
  /** Sequence number of the last record, undefined without records. */
  readonly lastSeq: number | undefined
}

/**
 * Where the intact records of a segment file end. Only a tail with no intact record after it counts as torn (a
 * write a crash cut off, never acknowledged); damage followed by intact records is left for the reader to skip.
 */
export function scanSegment (format: SegmentFormat, file: Buffer): SegmentScan {
  const start = headerBytes(format)
  let lastSeq: number | undefined
  let pos = start
  let end = start
  decodeRecords(format, file.subarray(start), {
    record (r, bytes) {
      lastSeq = r.seq
      pos += bytes
      end = pos
    },
    unreadable (bytes) { pos += bytes }
  })
  if (format === 'jsonl') {
    // Damaged lines in the middle stay; only an unterminated last line is cut.
    return { end: file.lastIndexOf(NEWLINE) + 1, lastSeq }
  }
  return { end, lastSeq }
}

/** Bytes of the records before `seq` in one segment file (header excluded). */
export function bytesBefore (format: SegmentFormat, file: Buffer, seq: number): number {
  let bytes = 0
  let done = false
  decodeRecords(format, file.subarray(headerBytes(format)), {
    record (r, n) {
      if (r.seq >= seq) done = true
      if (!done) bytes += n
    },
    // a damaged record counts as shipped
    unreadable (n) { if (!done) bytes += n }
  })
  return bytes
}

/** Whether a binary segment file starts with the header this version writes. */
export const hasFileHeader = (head: Buffer): boolean => head.length >= FILE_HEADER.length && head.subarray(0, FILE_HEADER.length).equals(FILE_HEADER)
