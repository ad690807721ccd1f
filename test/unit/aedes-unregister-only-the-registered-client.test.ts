import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Aedes, Client } from 'aedes'
import { registeredClient } from '../../src/broker/aedes/internals.ts'
import { unregisterOnlyTheRegisteredClient } from '../../src/broker/aedes/unregister-only-the-registered-client.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectPacket, openPacketPipe, startAedes, subscribePacket, type PacketPipe } from '../helpers/packet-pipe.ts'

/** Holds every unsubscribe aedes starts until release(): a closing client's close then finishes only when told. */
function holdUnsubscribes (aedes: Aedes): { readonly count: () => number, release: () => void } {
  const held: Array<() => void> = []
  const unsubscribe = aedes.unsubscribe.bind(aedes)
  aedes.unsubscribe = (topic, deliver, done) => { held.push(() => { unsubscribe(topic, deliver, done) }) }
  return { count: () => held.length, release: () => { for (const run of held.splice(0)) run() } }
}

async function connected (aedes: Aedes, id: string, filter?: string): Promise<PacketPipe> {
  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket(id))
  await pipe.next('connack')
  if (filter !== undefined) {
    pipe.send(subscribePacket(1, [[filter, 0]]))
    await pipe.next('suback')
  }
  return pipe
}

function departure (aedes: Aedes, client: Client): Promise<void> {
  return new Promise((resolve) => {
    aedes.on('clientDisconnect', (c) => { if (c === client) resolve() })
  })
}

test('a closing client whose id a newer connection took leaves the newer one registered', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  unregisterOnlyTheRegisteredClient(aedes)
  const unsubscribes = holdUnsubscribes(aedes)
  const older = await connected(aedes, 'd-1', 'commands')
  const olderGone = departure(aedes, older.client)
  older.end()
  // The older connection is closed and waits for its unsubscribe; it still holds the id in aedes's map.
  await waitUntil('the older connection\'s unsubscribe started', () => unsubscribes.count() > 0)
  const newer = await connected(aedes, 'd-1')
  assert.equal(registeredClient(aedes, 'd-1'), newer.client)
  unsubscribes.release()
  await bounded('the older connection unregistered', olderGone)
  assert.equal(registeredClient(aedes, 'd-1'), newer.client, 'the newer connection is still registered under its id')
  assert.equal(aedes.connectedClients, 1)
  // And aedes still knows it: its own close is announced and uncounted.
  const newerGone = departure(aedes, newer.client)
  newer.end()
  await bounded('the newer connection unregistered', newerGone)
  assert.equal(registeredClient(aedes, 'd-1'), undefined)
  assert.equal(aedes.connectedClients, 0)
})

test('a client that holds its id is unregistered as before', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  unregisterOnlyTheRegisteredClient(aedes)
  const only = await connected(aedes, 'd-2', 'commands')
  const other = await connected(aedes, 'd-3')
  const gone = departure(aedes, only.client)
  only.end()
  await bounded('the connection unregistered', gone)
  assert.equal(registeredClient(aedes, 'd-2'), undefined)
  assert.equal(registeredClient(aedes, 'd-3'), other.client)
  assert.equal(aedes.connectedClients, 1)
})
