import assert from 'node:assert/strict'
import { test } from 'node:test'
import { discardQueueWithSession } from '../../src/broker/aedes/discard-queue-with-clean-session.ts'
import { sessionPersistence } from '../../src/broker/aedes/internals.ts'
import { skipIdleRoundTrips } from '../../src/broker/aedes/skip-idle-persistence-round-trips.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { connectPacket, memoryPersistence, openPacketPipe, startAedes, subscribePacket } from '../helpers/packet-pipe.ts'

test('a clean-session connect discards the QoS 1 messages queued for the previous session (memory persistence)', { timeout: 60_000 }, async (t) => {
  // As installed: the clean connect does not read (and so does not clear) the stored queue itself.
  const persistence = skipIdleRoundTrips(discardQueueWithSession(memoryPersistence()))
  const aedes = await startAedes(t, { persistence })
  const store = sessionPersistence(persistence)

  const first = openPacketPipe(aedes)
  first.send(connectPacket('d-1', { clean: false }))
  await first.next('connack')
  first.send(subscribePacket(1, [['devices/d-1/down', 1]]))
  await first.next('suback')
  first.end()
  await first.closed()

  // Queued for the offline session.
  await new Promise<void>((resolve, reject) => {
    aedes.publish({ cmd: 'publish', topic: 'devices/d-1/down', payload: Buffer.from('stale'), qos: 1, retain: false, dup: false }, (err) => { if (err != null) reject(err); else resolve() })
  })
  const queued = async (): Promise<number> => {
    let n = 0
    for await (const packet of store.outgoingStream({ id: 'd-1' })) if (packet !== undefined) n++
    return n
  }
  await waitUntil('the message to be queued', async () => await queued() === 1)

  const clean = openPacketPipe(aedes)
  clean.send(connectPacket('d-1', { clean: true }))
  await clean.next('connack')
  clean.end()
  await clean.closed()

  const resumed = openPacketPipe(aedes)
  resumed.send(connectPacket('d-1', { clean: false }))
  await resumed.next('connack')
  // A PINGRESP answers a packet sent after the CONNACK: a stored message would have been written before it.
  resumed.send({ cmd: 'pingreq' })
  await resumed.next('pingresp')
  assert.deepEqual(resumed.received.map((p) => p.cmd), ['connack', 'pingresp'])
  assert.equal(await queued(), 0)
})
