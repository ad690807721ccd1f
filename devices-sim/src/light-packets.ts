// The MQTT 3.1.1 packets every light connection exchanges, written and read without mqtt-packet: CONNECT and
// SUBSCRIBE out; CONNACK, a short SUBACK, PUBACK and PINGRESP in. mqtt-packet's parser holds a stream of its own
// (bl's BufferListStream) and an emitter per connection, and its generator builds a packet in pieces; for the two
// packets in and two out that most devices of a run ever see, that was a good part of the simulator's CPU per
// device. Anything else (a PUBLISH, a packet split over reads, a form these readers do not take) goes to
// mqtt-packet's parser, which from then on reads the rest of that connection.

import type { Packet } from 'mqtt-packet'

export interface ConnectFields {
  readonly clientId: string
  readonly username: string
  readonly password: string
  readonly keepalive: number
  readonly clean: boolean
}

/** The remaining-length field (MQTT 3.1.1, 2.2.3): 7 bits a byte, least significant first. */
function lengthBytes (n: number): number[] {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return out
}

/** Writes `s` as a length-prefixed UTF-8 string at `at`; returns the offset after it. */
function writeString (buf: Buffer, at: number, s: string, bytes: number): number {
  buf.writeUInt16BE(bytes, at)
  buf.write(s, at + 2, bytes, 'utf8')
  return at + 2 + bytes
}

function withHeader (first: number, body: number): { buf: Buffer, at: number } {
  const len = lengthBytes(body)
  const buf = Buffer.allocUnsafe(1 + len.length + body)
  buf[0] = first
  for (let i = 0; i < len.length; i++) buf[1 + i] = len[i] as number
  return { buf, at: 1 + len.length }
}

/** CONNECT (protocol level 4) with user name and password, no will. */
export function encodeConnect (c: ConnectFields): Buffer {
  const id = Buffer.byteLength(c.clientId)
  const user = Buffer.byteLength(c.username)
  const pass = Buffer.byteLength(c.password)
  // "MQTT", level, flags, keepalive; then the three strings.
  const { buf, at: start } = withHeader(0x10, 10 + 2 + id + 2 + user + 2 + pass)
  let at = writeString(buf, start, 'MQTT', 4)
  buf[at++] = 4
  buf[at++] = 0x80 | 0x40 | (c.clean ? 0x02 : 0)
  buf.writeUInt16BE(c.keepalive, at)
  at = writeString(buf, at + 2, c.clientId, id)
  at = writeString(buf, at, c.username, user)
  writeString(buf, at, c.password, pass)
  return buf
}

/** SUBSCRIBE of `filters`, each at `qos`. */
export function encodeSubscribe (messageId: number, filters: readonly string[], qos: 0 | 1): Buffer {
  const sizes = filters.map((f) => Buffer.byteLength(f))
  const { buf, at: start } = withHeader(0x82, 2 + sizes.reduce((a, n) => a + 2 + n + 1, 0))
  buf.writeUInt16BE(messageId, start)
  let at = start + 2
  filters.forEach((f, i) => {
    at = writeString(buf, at, f, sizes[i] as number)
    buf[at++] = qos
  })
  return buf
}

/**
 * Reads the packets at the start of `chunk` that it takes (CONNACK, SUBACK with a one-byte remaining length, PUBACK,
 * PINGRESP, each whole) and hands them to `onPacket`, in mqtt-packet's shapes. Returns where it stopped: the length
 * of the chunk when it read all of it, else the offset of the first packet that mqtt-packet's parser must read.
 */
export function readLightPackets (chunk: Buffer, onPacket: (packet: Packet) => void): number {
  let at = 0
  while (at + 2 <= chunk.length) {
    const type = chunk[at] as number
    const len = chunk[at + 1] as number
    if (len >= 0x80 || at + 2 + len > chunk.length) return at
    if (type === 0x20 && len === 2 && ((chunk[at + 2] as number) & 0xfe) === 0) {
      onPacket({ cmd: 'connack', sessionPresent: chunk[at + 2] === 1, returnCode: chunk[at + 3] as number })
    } else if (type === 0x90 && len >= 3) {
      onPacket({ cmd: 'suback', messageId: chunk.readUInt16BE(at + 2), granted: Array.from(chunk.subarray(at + 4, at + 2 + len)) })
    } else if (type === 0x40 && len === 2) {
      onPacket({ cmd: 'puback', messageId: chunk.readUInt16BE(at + 2) })
    } else if (type === 0xd0 && len === 0) {
      onPacket({ cmd: 'pingresp' })
    } else {
      return at
    }
    at += 2 + len
  }
  return at
}
