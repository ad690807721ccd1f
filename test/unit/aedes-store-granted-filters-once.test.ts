import assert from 'node:assert/strict'
import { test } from 'node:test'
import { guardSubscriptions } from '../../src/broker/aedes/store-granted-filters-once.ts'
import { connectPacket, memoryPersistence, openPacketPipe, spyOn, startAedes, subscribePacket } from '../helpers/packet-pipe.ts'

test('a multi-filter SUBSCRIBE of a persistent session stores the granted filters once', { timeout: 60_000 }, async (t) => {
  const base = memoryPersistence()
  const adds = spyOn(base, 'addSubscriptions')
  const refused = 'devices/other/down'
  const persistence = guardSubscriptions(base, (_client, sub) => sub.topic !== refused)
  const aedes = await startAedes(t, {
    persistence,
    authorizeSubscribe (_client, sub, done) { done(null, sub.topic === refused ? null : sub) }
  })

  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('d-1', { clean: false }))
  await pipe.next('connack')
  pipe.send(subscribePacket(7, [['devices/d-1/down', 1], [refused, 1], ['broadcast/all', 0]]))
  const suback = await pipe.next('suback') as { granted: number[] }
  assert.deepEqual(suback.granted, [1, 128, 0])
  assert.equal(adds.length, 1, 'one store call for the packet')
  assert.deepEqual((adds[0]?.[1] as Array<{ topic: string }>).map((s) => s.topic), ['devices/d-1/down', 'broadcast/all'])
})
