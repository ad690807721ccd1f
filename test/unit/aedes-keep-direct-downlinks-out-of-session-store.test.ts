import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Client } from 'aedes'
import { deliverToClient, takePacketId } from '../../src/broker/aedes/internals.ts'
import { keepDirectDownlinksOutOfStore } from '../../src/broker/aedes/keep-direct-downlinks-out-of-session-store.ts'
import { connectPacket, memoryPersistence, openPacketPipe, spyOn, startAedes, subscribePacket } from '../helpers/packet-pipe.ts'

test('a direct QoS 1 downlink is not stored in the session, and its PUBACK goes to the sender instead of the store', { timeout: 60_000 }, async (t) => {
  const base = memoryPersistence()
  const updates = spyOn(base, 'outgoingUpdate')
  const clears = spyOn(base, 'outgoingClearMessageId')
  const pubacks: number[] = []
  const direct = new Set<number>()
  const persistence = keepDirectDownlinksOutOfStore(base, {
    isDirect: (packet) => packet.brokerId === 'n1:direct',
    onPuback: (_client: Client, messageId) => { pubacks.push(messageId); return direct.has(messageId) }
  })
  const aedes = await startAedes(t, { persistence })

  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('d-1', { clean: false }))
  await pipe.next('connack')
  pipe.send(subscribePacket(1, [['devices/d-1/down', 1]]))
  await pipe.next('suback')

  const messageId = takePacketId(pipe.client)
  direct.add(messageId)
  deliverToClient(pipe.client, { cmd: 'publish', topic: 'devices/d-1/down', payload: Buffer.from('{}'), qos: 1, retain: false, dup: false, brokerId: 'n1:direct', brokerCounter: 1, messageId } as never, () => {})
  const publish = await pipe.next('publish') as { messageId: number }
  assert.equal(publish.messageId, messageId)
  assert.equal(updates.length, 0, 'not stored')
  pipe.send({ cmd: 'puback', messageId })
  // The store would be asked for the PUBACK before the next packet is read; a PINGRESP marks that it has been read.
  pipe.send({ cmd: 'pingreq' })
  await pipe.next('pingresp')
  assert.deepEqual(pubacks, [messageId])
  assert.equal(clears.length, 0, 'the store is not asked')

  // Routed QoS 1 messages still go through the store.
  await new Promise<void>((resolve) => { aedes.publish({ cmd: 'publish', topic: 'devices/d-1/down', payload: Buffer.from('x'), qos: 1, retain: false, dup: false }, () => { resolve() }) })
  const routed = await pipe.next('publish') as { messageId: number }
  assert.equal(updates.length, 1)
  pipe.send({ cmd: 'puback', messageId: routed.messageId })
  pipe.send({ cmd: 'pingreq' })
  await pipe.next('pingresp')
  assert.equal(clears.length, 1)
})
