import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test, type TestContext } from 'node:test'
import pino from 'pino'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import { createClusterMember, type PresenceEvent } from '../../src/cluster/cluster-member.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import type { NodeRecord, NodeRegistry } from '../../src/stores/node-registry.ts'
import type { PresenceStore } from '../../src/stores/presence-store.ts'
import { manualClock } from '../helpers/clock.ts'
import { waitUntil } from '../helpers/eventually.ts'

// A node whose record expired is swept (its presence entries removed, its devices announced `node-dead`) only when
// its record is still missing at the following sweeps: under load a live node's heartbeat is often late by more
// than the record's TTL, and a sweep of a live node made it write every entry again (docs/cluster.md). The
// registry's clock stands still, so records expire only when the test writes one with no TTL.

const record = (nodeId: string): NodeRecord => ({ nodeId, mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3', connections: 2, weight: 1, draining: false, startedAt: 0, heartbeatAt: 0 })

interface Survivor {
  readonly presence: PresenceStore
  readonly registry: NodeRegistry
  readonly events: PresenceEvent[]
  /** Sweeps that found n2 without a record. */
  readonly sawDead: () => number
  /** All sweeps' reads of the members. */
  readonly sweeps: () => number
}

/** A survivor n1 beside n2, whose two devices are online; `onDead` runs after each sweep's read that finds n2 without a record. */
async function survivor (t: TestContext, onDead: (registry: NodeRegistry) => Promise<void>): Promise<Survivor> {
  const registry = createMemoryNodeRegistry(manualClock().now)
  const presence = createMemoryPresenceStore()
  await presence.connect('dev-a', 'n2', 1)
  await presence.connect('dev-b', 'n2', 1)
  // n2's record is there, then has expired (TTL 0 at a clock that stands still).
  await registry.heartbeat(record('n2'), 0)
  let sawDead = 0
  let sweeps = 0
  const events: PresenceEvent[] = []
  const member = createClusterMember({
    nodeId: 'n1',
    logger: pino({ level: 'silent' }),
    registry: {
      ...registry,
      dead: async () => {
        const ids = await registry.dead()
        sweeps++
        if (ids.includes('n2')) { sawDead++; await onDead(registry) }
        return ids
      }
    },
    presence,
    heartbeatMs: 50,
    weight: 1,
    drainRate: 100,
    sessionExpiryMs: 0,
    counters: createMemoryCounterStore(),
    onPresence: (e) => { events.push(e) }
  })
  const broker = { aedes: new EventEmitter(), liveClients: () => [], liveSessions: () => 0, localClient: () => undefined, setAccepting: () => {}, dropSession: async () => {} } as unknown as BrokerNode
  t.after(async () => { await member.stop() })
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })
  return { presence, registry, events, sawDead: () => sawDead, sweeps: () => sweeps }
}

test('a node found without a record at one sweep, heartbeating again before the next, keeps its presence', { timeout: 60_000 }, async (t) => {
  let heard = false
  const s = await survivor(t, async (registry) => {
    // Late, not dead: its heartbeat arrives right after this sweep read the members.
    if (!heard) await registry.heartbeat(record('n2'), 60_000)
    heard = true
  })
  await waitUntil('a sweep that found n2 without a record', () => s.sawDead() === 1, 30_000)
  // The marker: three more sweeps, by which a sweep of n2 would have happened.
  const after = s.sweeps() + 3
  await waitUntil('three more sweeps', () => s.sweeps() >= after, 30_000)
  assert.equal(s.sawDead(), 1, 'n2 was seen without a record once')
  assert.equal(await s.presence.countNode('n2'), 2, 'n2\'s devices are still online')
  assert.deepEqual(s.events.filter((e) => e.reason === 'node-dead'), [])
})

test('a node whose record stays missing is swept at its third sweep: entries removed, devices announced node-dead', { timeout: 60_000 }, async (t) => {
  const s = await survivor(t, async () => {})
  await waitUntil('n2\'s entries removed', async () => await s.presence.countNode('n2') === 0, 30_000)
  assert.ok(s.sawDead() >= 3, `swept after ${s.sawDead()} sweeps that found it without a record`)
  assert.deepEqual(s.events.filter((e) => e.reason === 'node-dead').map((e) => e.deviceId).sort(), ['dev-a', 'dev-b'])
})
