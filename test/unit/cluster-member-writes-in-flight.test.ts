import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import type { Client } from 'aedes'
import pino from 'pino'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import { createClusterMember } from '../../src/cluster/cluster-member.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import { waitUntil } from '../helpers/eventually.ts'

// While devices arrive, a node's count of live connections and its count of presence entries differ by the writes in
// flight; a full listing of the node's entries then finds nothing to repair, so the check of each period skips it.
// A stale entry that no write in flight explains still gets the full pass. Ticks are run by the test (the timer's
// period is a minute), so what each tick does is counted without timing.

test('presence counts that differ only by writes in flight do not list every entry; a stale entry does', { timeout: 60_000 }, async (t) => {
  const presence = createMemoryPresenceStore()
  let listings = 0
  let release: (() => void) | undefined
  const released = new Promise<void>((resolve) => { release = resolve })
  let writes = 0
  const member = createClusterMember({
    nodeId: 'n1',
    logger: pino({ level: 'silent' }),
    registry: createMemoryNodeRegistry(),
    presence: {
      ...presence,
      listNode: async (nodeId) => { listings++; return await presence.listNode(nodeId) },
      // The device's presence write waits until the test releases it.
      connect: async (...args) => { writes++; await released; return await presence.connect(...args) }
    },
    heartbeatMs: 60_000,
    weight: 1,
    drainRate: 100,
    sessionExpiryMs: 0,
    counters: createMemoryCounterStore()
  })
  const clients: Client[] = []
  const aedes = new EventEmitter()
  const broker = { aedes, liveClients: () => clients.filter((c) => !c.closed), liveSessions: () => clients.length, localClient: () => undefined, setAccepting: () => {}, dropSession: async () => {} } as unknown as BrokerNode
  t.after(async () => { release?.(); await member.stop() })
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })
  // The first check lists in any case (no full pass yet).
  await member.tick()
  await member.tick()
  const first = listings
  assert.equal(first, 1)

  const device = { id: 'dev-1', closed: false, conn: {} } as unknown as Client
  clients.push(device)
  aedes.emit('client', device)
  await waitUntil('the device\'s presence write in flight', () => writes === 1, 30_000)
  await member.tick()
  await member.tick()
  assert.equal(listings, first, 'one live connection, no entry, its write in flight: no listing')

  // Two entries of this node that no live connection has, one more than the one write in flight explains: the
  // next check lists and removes them.
  await presence.connect('gone-1', 'n1', Date.now())
  await presence.connect('gone-2', 'n1', Date.now())
  await member.tick()
  await member.tick()
  assert.equal(listings, first + 1, 'stale entries beyond the writes in flight: a full pass')
  assert.equal(await presence.get('gone-1'), undefined, 'a stale entry was removed')
  assert.equal(await presence.get('gone-2'), undefined, 'a stale entry was removed')

  release?.()
  await waitUntil('the device\'s entry written', async () => await presence.get('dev-1') !== undefined, 30_000)
})
