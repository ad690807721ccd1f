import assert from 'node:assert/strict'
import { test } from 'node:test'
import { limitPacketSize, maxPacketBytes, maxWebSocketMessageBytes } from '../../src/broker/aedes/refuse-oversized-packets.ts'
import { connectPacket, openPacketPipe, startAedes } from '../helpers/packet-pipe.ts'

test('a packet whose header announces more than the limit closes the connection before its body arrives', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const pipe = openPacketPipe(aedes)
  const refused: number[] = []
  limitPacketSize(pipe.client, 1000, (announced) => { refused.push(announced) })
  pipe.send(connectPacket('d-1'))
  await pipe.next('connack')
  // A PUBLISH header announcing 1,000,000 bytes (remaining length 0xC0 0x84 0x3D), and only 10 of them.
  pipe.send(Buffer.concat([Buffer.from([0x30, 0xc0, 0x84, 0x3d]), Buffer.alloc(10)]))
  await pipe.closed()
  assert.deepEqual(refused, [1_000_000])
})

test('a packet within the limit is read', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const pipe = openPacketPipe(aedes)
  limitPacketSize(pipe.client, 1000, () => { assert.fail('refused') })
  pipe.send(connectPacket('d-1'))
  await pipe.next('connack')
  pipe.send({ cmd: 'publish', topic: 't', payload: Buffer.alloc(900), qos: 1, messageId: 3, retain: false, dup: false })
  assert.equal((await pipe.next('puback') as { messageId: number }).messageId, 3)
})

test('the limits leave room for the longest topic and the fixed header', () => {
  assert.equal(maxPacketBytes(100), 100 + 65_535 + 16)
  assert.equal(maxWebSocketMessageBytes(1000), 1005)
})
