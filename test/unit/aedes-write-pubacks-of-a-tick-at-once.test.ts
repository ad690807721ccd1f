import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { generate, type Packet } from 'mqtt-packet'
import { pubackBytes, writePubacksOfATickAtOnce } from '../../src/broker/aedes/write-pubacks-of-a-tick-at-once.ts'
import { connectPacket, openPacketPipe, spyOn, startAedes } from '../helpers/packet-pipe.ts'

// The PUBACKs aedes writes to one connection in one tick reach the stream as one write, with the same bytes in the
// same order. Changes the process (this file's): mqtt-packet's writeToStream is replaced.

type WriteToStream = ((packet: object, stream: Writable, opts?: object) => boolean) & { cacheNumbers?: boolean }
const mqtt = createRequire(import.meta.url)('mqtt-packet') as { writeToStream: WriteToStream }

/** A stream that keeps each chunk it is given, as it is given. */
function recorder (): { stream: Writable, chunks: Buffer[] } {
  const chunks: Buffer[] = []
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { chunks.push(chunk); cb() } })
  return { stream, chunks }
}

const nextTick = async (): Promise<void> => await new Promise((resolve) => { process.nextTick(resolve) })

test('a device\'s window of QoS 1 publishes is acknowledged in one write, every packet id once and in order', { timeout: 60_000 }, async (t) => {
  assert.equal(writePubacksOfATickAtOnce(), true)
  assert.equal(writePubacksOfATickAtOnce(), false, 'a second call changes nothing')
  const aedes = await startAedes(t)
  const device = openPacketPipe(aedes)
  device.send(connectPacket('d-1'))
  await device.next('connack')
  const writes = spyOn(device.conn, '_write')

  const ids = Array.from({ length: 50 }, (_, i) => i + 1)
  // One chunk: aedes dispatches every packet of a read chunk at once, so their PUBACKs are written in one tick.
  device.send(Buffer.concat(ids.map((messageId) => generate({ cmd: 'publish', topic: 'devices/d-1/telemetry', payload: Buffer.from(`m${messageId}`), qos: 1, messageId, retain: false, dup: false }))))
  const acked: number[] = []
  while (acked.length < ids.length) acked.push((await device.next('puback') as { messageId: number }).messageId)
  assert.deepEqual(acked, ids)
  assert.equal(writes.length, 1, `the 50 PUBACKs went out in ${writes.length} writes`)
  assert.deepEqual(writes[0]?.[0], pubackBytes(ids))
})

test('queued PUBACKs go out before any other packet written to the same stream; other calls are mqtt-packet\'s own', async () => {
  writePubacksOfATickAtOnce()
  const expected = (packets: Packet[]): Buffer => Buffer.concat(packets.map((p) => generate(p)))
  assert.deepEqual(pubackBytes([1, 300, 65535]), expected([1, 300, 65535].map((messageId) => ({ cmd: 'puback', messageId }))), 'the bytes mqtt-packet writes')

  const a = recorder()
  const b = recorder()
  assert.equal(mqtt.writeToStream({ cmd: 'puback', messageId: 7 }, a.stream), true)
  assert.equal(mqtt.writeToStream({ cmd: 'puback', messageId: 8 }, b.stream), true)
  assert.equal(mqtt.writeToStream({ cmd: 'puback', messageId: 9 }, a.stream), true)
  assert.deepEqual(a.chunks, [], 'held until the next tick')
  mqtt.writeToStream({ cmd: 'pingresp' }, a.stream)
  await nextTick()
  await nextTick()
  assert.deepEqual(Buffer.concat(a.chunks), expected([{ cmd: 'puback', messageId: 7 }, { cmd: 'puback', messageId: 9 }, { cmd: 'pingresp' }]))
  assert.deepEqual(b.chunks, [pubackBytes([8])], 'each stream its own')

  // With options (MQTT.js's call, MQTT 5 possible) a PUBACK is mqtt-packet's own write.
  const c = recorder()
  mqtt.writeToStream({ cmd: 'puback', messageId: 10, reasonCode: 16 }, c.stream, { protocolVersion: 5 })
  await nextTick()
  assert.deepEqual(Buffer.concat(c.chunks), generate({ cmd: 'puback', messageId: 10, reasonCode: 16 }, { protocolVersion: 5 }))

  // MQTT.js sets the number cache through the function it calls.
  const cached = mqtt.writeToStream.cacheNumbers
  mqtt.writeToStream.cacheNumbers = false
  assert.equal(mqtt.writeToStream.cacheNumbers, false)
  mqtt.writeToStream.cacheNumbers = cached
})
