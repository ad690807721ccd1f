import assert from 'node:assert/strict'
import { test } from 'node:test'
import { skipIdleRoundTrips } from '../../src/broker/aedes/skip-idle-persistence-round-trips.ts'
import { connectPacket, memoryPersistence, openPacketPipe, spyOn, startAedes } from '../helpers/packet-pipe.ts'

test('a clean connect with a will reads no stored queue and deletes no will of an unset broker id', { timeout: 60_000 }, async (t) => {
  const base = memoryPersistence()
  const delWill = spyOn(base, 'delWill')
  const outgoingStream = spyOn(base, 'outgoingStream')
  const aedes = await startAedes(t, { persistence: skipIdleRoundTrips(base) })

  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('d-1', { will: { topic: 'devices/d-1/status', payload: Buffer.from('gone') } }))
  await pipe.next('connack')
  pipe.send({ cmd: 'pingreq' })
  await pipe.next('pingresp')
  assert.deepEqual(delWill.filter(([c]) => (c as { brokerId?: string }).brokerId === undefined), [], 'no delWill for will:undefined:<id>')
  assert.equal(outgoingStream.length, 0, 'no read of a clean session\'s queue')

  // A persistent session's queue is still read.
  const persistent = openPacketPipe(aedes)
  persistent.send(connectPacket('d-2', { clean: false }))
  await persistent.next('connack')
  persistent.send({ cmd: 'pingreq' })
  await persistent.next('pingresp')
  assert.equal(outgoingStream.length, 1)
})
