import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientInternals } from '../../src/broker/aedes/internals.ts'
import { resendStoredQueues } from '../../src/broker/aedes/resend-stored-queue.ts'
import { connectPacket, memoryPersistence, openPacketPipe, startAedes, subscribePacket } from '../helpers/packet-pipe.ts'

test('a stored, unacknowledged message is written once more despite aedes\'s duplicate mark, which is kept', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t, { persistence: memoryPersistence() })
  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('d-1', { clean: false }))
  await pipe.next('connack')
  pipe.send(subscribePacket(1, [['devices/d-1/down', 1]]))
  await pipe.next('suback')

  await new Promise<void>((resolve) => { aedes.publish({ cmd: 'publish', topic: 'devices/d-1/down', payload: Buffer.from('m1'), qos: 1, retain: false, dup: false }, () => { resolve() }) })
  const first = await pipe.next('publish') as { payload: Buffer, messageId: number }
  // Not acknowledged: it stays in the session's queue, and the client's mark is at its counter.
  const mark = clientInternals(pipe.client).duplicates[aedes.id]
  assert.equal(typeof mark, 'number')

  assert.equal(await resendStoredQueues(aedes, [pipe.client]), 1)
  const again = await pipe.next('publish') as { payload: Buffer }
  assert.equal(again.payload.toString(), 'm1')
  assert.equal(clientInternals(pipe.client).duplicates[aedes.id], mark)
  assert.equal(first.payload.toString(), 'm1')
})
