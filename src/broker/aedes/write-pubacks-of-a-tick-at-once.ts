// CPU per uplink (bench/uplink-throughput.ts, CPU profile of a node): aedes writes each PUBACK with
// mqtt-packet's writeToStream, which corks the socket, writes the fixed header, the length and the packet id as
// three chunks and uncorks on the next tick. A group commit of the spool releases many uplinks of one connection
// at once (a device's whole window), so one release cost three stream writes per PUBACK and one writev of them
// all. Here a PUBACK that aedes writes is queued per stream, and on the next tick (when mqtt-packet would have
// uncorked) the stream gets the queued PUBACKs as one buffer. Any other packet written to that stream first
// flushes the queue, so the stream sees the same bytes in the same order as before.
// Only aedes's call shape is taken: writeToStream(packet, stream) without options, so MQTT 3.1.1 (aedes writes
// every packet that way), and a `puback` with a numeric packet id; every other call goes to mqtt-packet's own.
// Touches: mqtt-packet's `writeToStream` export, for the whole process (aedes reads it from the module at each
// write). When it is missing or not a function nothing is installed (a speed-up only). Upstream (aedes) lacks a
// way to write several acknowledgements of one connection at once.

import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'

const INSTALLED = Symbol.for('pushline.pubacksOfATickAtOnce')
/** MQTT 3.1.1 PUBACK: fixed header 0x40, remaining length 2, then the packet id. */
const PUBACK_HEADER = 0x40
const PUBACK_BYTES = 4

interface WrittenPacket {
  readonly cmd?: string
  readonly messageId?: unknown
}

type WriteToStream = (packet: WrittenPacket, stream: Writable, opts?: unknown) => boolean

interface MqttPacketExports {
  writeToStream?: unknown
}

/** The PUBACKs of `ids` (packet ids), one after the other. */
export function pubackBytes (ids: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(ids.length * PUBACK_BYTES)
  for (let i = 0, at = 0; i < ids.length; i++, at += PUBACK_BYTES) {
    const id = ids[i] as number
    buf[at] = PUBACK_HEADER
    buf[at + 1] = 2
    buf[at + 2] = id >>> 8
    buf[at + 3] = id & 0xff
  }
  return buf
}

/**
 * Replaces mqtt-packet's writeToStream with one that writes the PUBACKs aedes writes to one stream in one tick as
 * one buffer. Returns false when already installed or when mqtt-packet has no writeToStream function.
 */
export function writePubacksOfATickAtOnce (): boolean {
  const mqtt = createRequire(import.meta.url)('mqtt-packet') as MqttPacketExports
  const own = mqtt.writeToStream
  if (typeof own !== 'function' || (own as { [INSTALLED]?: boolean })[INSTALLED] === true) return false
  const write = own as WriteToStream
  /** Per stream, the packet ids of the PUBACKs queued this tick. */
  const queued = new WeakMap<Writable, number[]>()

  const flush = (stream: Writable): void => {
    const ids = queued.get(stream)
    if (ids === undefined) return
    queued.delete(stream)
    // A destroyed stream discards writes, as it discarded mqtt-packet's corked chunks.
    if (!stream.destroyed) stream.write(pubackBytes(ids))
  }

  const writeToStream = function (packet: WrittenPacket, stream: Writable, opts?: unknown): boolean {
    const id = packet.messageId
    if (opts === undefined && packet.cmd === 'puback' && typeof id === 'number' && id >= 0 && id <= 0xffff && Number.isInteger(id)) {
      const ids = queued.get(stream)
      if (ids === undefined) {
        queued.set(stream, [id])
        process.nextTick(flush, stream)
      } else {
        ids.push(id)
      }
      // A full buffer is reported as mqtt-packet's write would have reported it; aedes then waits for 'drain'.
      return stream.writableNeedDrain !== true
    }
    flush(stream)
    return write(packet, stream, opts)
  }
  // MQTT.js switches mqtt-packet's number cache through this property of the function.
  Object.defineProperty(writeToStream, 'cacheNumbers', {
    get: () => (write as { cacheNumbers?: boolean }).cacheNumbers,
    set: (value: boolean) => { (write as { cacheNumbers?: boolean }).cacheNumbers = value }
  })
  Object.defineProperty(writeToStream, INSTALLED, { value: true })
  mqtt.writeToStream = writeToStream
  return true
}
