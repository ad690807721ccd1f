import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import pino from 'pino'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import { createClusterMember, type PresenceEvent } from '../../src/cluster/cluster-member.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createRedisNodeRegistry } from '../../src/stores/redis-node-registry.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'
import type { PresenceEntry, PresenceStore } from '../../src/stores/presence-store.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { connectRedis, uniquePrefix } from '../helpers/services.ts'

// A node whose own reconciliation is long (after a restart of every node each one reconciles thousands of entries)
// still sweeps a dead node's presence: the sweep runs apart from the upkeep (docs/cluster.md, Membership). The
// reconciliation is held here at its listing, on the real Redis stores, for as long as the test runs.

test('a node whose reconciliation is held up still sweeps a dead node\'s presence and announces it', { timeout: 60_000 }, async (t) => {
  const redis = connectRedis(t)
  const prefix = uniquePrefix()
  const registry = createRedisNodeRegistry({ redis, prefix })
  const store = createRedisPresenceStore({ redis, prefix })
  let listingHeld = false
  let release = (): void => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const presence: PresenceStore = {
    ...store,
    async listNode (nodeId): Promise<PresenceEntry[]> {
      listingHeld = true
      await released
      return await store.listNode(nodeId)
    }
  }
  const events: PresenceEvent[] = []
  const member = createClusterMember({
    nodeId: 'busy-node',
    logger: pino({ level: 'silent' }),
    registry,
    presence,
    // Its own timer ticks every 50 ms; the sweep may start after two periods of heartbeats.
    heartbeatMs: 100,
    weight: 1,
    drainRate: 100,
    sessionExpiryMs: 0,
    counters: createMemoryCounterStore(),
    onPresence: (e) => { events.push(e) }
  })
  const broker = { aedes: new EventEmitter(), liveClients: () => [], liveSessions: () => 0, localClient: () => undefined, setAccepting: () => {}, dropSession: async () => {} } as unknown as BrokerNode
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })
  t.after(async () => { release(); await member.stop() })
  await waitUntil('the reconciliation to be held at its listing', () => listingHeld)

  // A node that heartbeated once, with a device on it, and then died: its record expires at once.
  await registry.heartbeat({ nodeId: 'dead-node', mqtt: 'mqtt://127.0.0.1:4', ws: 'ws://127.0.0.1:5', http: 'http://127.0.0.1:6', connections: 1, weight: 1, draining: false, startedAt: Date.now(), heartbeatAt: Date.now() }, 1)
  await store.connect('on-dead-node', 'dead-node', Date.now())
  // The announcement comes last in a sweep (after the removal and the registry's forgetting): wait for it.
  await waitUntil('the device to be announced disconnected, reason node-dead', () =>
    events.some((e) => e.event === 'disconnected' && e.deviceId === 'on-dead-node' && e.nodeId === 'dead-node' && e.reason === 'node-dead'))
  assert.equal(await store.get('on-dead-node'), undefined, 'the dead node\'s presence is swept')
  assert.equal(listingHeld, true)
  assert.deepEqual(await registry.dead(), [], 'the dead node is forgotten')
})
