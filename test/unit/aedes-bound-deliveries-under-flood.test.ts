import assert from 'node:assert/strict'
import { test } from 'node:test'
import { installFloodGuard, type DeliveryDrop } from '../../src/broker/aedes/bound-deliveries-under-flood.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { connectPacket, openPacketPipe, startAedes, subscribePacket } from '../helpers/packet-pipe.ts'

test('QoS 0 messages to a subscriber that stopped reading are dropped once its buffer is full; QoS 1 ones are not', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const dropped: DeliveryDrop[] = []
  const guard = installFloodGuard(aedes, {
    subscriberBufferBytes: 100,
    deliveryQueueMax: 1000,
    exempt: (packet) => packet.brokerId === 'n1:direct',
    onDropped: (reason) => { dropped.push(reason) },
    onPublisherPaused: () => {}
  })
  const slow = openPacketPipe(guard)
  slow.send(connectPacket('slow'))
  await slow.next('connack')
  slow.send(subscribePacket(1, [['t', 0]]))
  await slow.next('suback')
  slow.freeze()

  const send = (qos: 0 | 1): Promise<void> => new Promise((resolve) => {
    aedes.publish({ cmd: 'publish', topic: 't', payload: Buffer.alloc(200, qos), qos, retain: false, dup: false }, () => { resolve() })
  })
  // The first is written (and stays in the frozen socket's buffer); the next finds the buffer over the bound.
  await send(0)
  await waitUntil('the first message in the socket buffer', () => slow.conn.writableLength >= 100)
  await send(0)
  await waitUntil('a drop', () => dropped.length === 1)
  assert.deepEqual(dropped, ['slow_subscriber'])
  await send(1)
  // The QoS 0 message after it is the marker: its drop is counted after the QoS 1 message was let through or not.
  await send(0)
  await waitUntil('the next QoS 0 message dropped', () => dropped.length >= 2)
  assert.deepEqual(dropped, ['slow_subscriber', 'slow_subscriber'], 'the QoS 1 message published between them was not dropped')
})
