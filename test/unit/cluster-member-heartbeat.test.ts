import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test, type TestContext } from 'node:test'
import pino from 'pino'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import { createClusterMember, type ClusterMember } from '../../src/cluster/cluster-member.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import type { NodeRegistry } from '../../src/stores/node-registry.ts'
import { waitUntil } from '../helpers/eventually.ts'

// Heartbeats go on while a reconciliation is held up (under load its Redis commands take long): a node whose
// reconciliation is slow must not look dead to the others (docs/cluster.md, Membership).

test('heartbeats go on while a reconciliation is held up, and the held reconciliation finishes once released', { timeout: 60_000 }, async (t) => {
  const registry = createMemoryNodeRegistry()
  let beats = 0
  const presence = createMemoryPresenceStore()
  let release: (() => void) | undefined
  const released = new Promise<void>((resolve) => { release = resolve })
  let held = false
  let counted = 0
  const member = createClusterMember({
    nodeId: 'n1',
    logger: pino({ level: 'silent' }),
    registry: { ...registry, heartbeat: async (record, ttlMs) => { beats++; return await registry.heartbeat(record, ttlMs) } },
    // The reconciliation's first read waits until the test releases it.
    presence: { ...presence, countNode: async (nodeId) => { held = true; await released; counted++; return await presence.countNode(nodeId) } },
    heartbeatMs: 100,
    weight: 1,
    drainRate: 100,
    sessionExpiryMs: 0,
    counters: createMemoryCounterStore()
  })
  // The parts of a broker node the member uses, for a node without clients.
  const broker = { aedes: new EventEmitter(), liveClients: () => [], liveSessions: () => 0, localClient: () => undefined, setAccepting: () => {}, dropSession: async () => {} } as unknown as BrokerNode
  t.after(async () => { release?.(); await member.stop() })
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })

  await waitUntil('a reconciliation to start and be held', () => held, 30_000)
  const before = beats
  await waitUntil('three more heartbeats while it is held', () => beats >= before + 3, 30_000)
  assert.equal(counted, 0, 'the reconciliation is still held')
  assert.equal(member.status().heartbeatOk, true)
  release?.()
  await waitUntil('the held reconciliation to finish', () => counted >= 1, 30_000)
})

/** A member of a node without clients, heartbeating rarely (the tests tick by hand or only at start), started. */
async function startLone (t: TestContext, registry: NodeRegistry, setAccepting: (on: boolean) => void = () => {}): Promise<ClusterMember> {
  const member = createClusterMember({
    nodeId: 'n1',
    logger: pino({ level: 'silent' }),
    registry,
    presence: createMemoryPresenceStore(),
    heartbeatMs: 60_000,
    weight: 1,
    drainRate: 100,
    sessionExpiryMs: 0,
    counters: createMemoryCounterStore()
  })
  const broker = { aedes: new EventEmitter(), liveClients: () => [], liveSessions: () => 0, localClient: () => undefined, setAccepting, dropSession: async () => {} } as unknown as BrokerNode
  t.after(async () => { await member.stop() })
  // start() runs the first heartbeat and resolves once it has completed.
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })
  return member
}

test('a heartbeat sends its drain-order read and its record write together: one round trip, not two in a row', { timeout: 30_000 }, async (t) => {
  const registry = createMemoryNodeRegistry()
  // The drain-order read is answered only once the record write has been sent: a heartbeat that waits for the read
  // before it writes never completes.
  let wrote: (() => void) | undefined
  const written = new Promise<void>((resolve) => { wrote = resolve })
  t.after(() => { wrote?.() })
  let beats = 0
  const member = await startLone(t, {
    ...registry,
    heartbeat: async (record, ttlMs) => { beats++; wrote?.(); return await registry.heartbeat(record, ttlMs) },
    drainRequested: async (nodeId) => { await written; return await registry.drainRequested(nodeId) }
  })
  assert.equal(member.status().heartbeatOk, true)
  assert.equal(beats, 1)
})

test('a drain order read with the heartbeat is in the node record at once', { timeout: 30_000 }, async (t) => {
  const registry = createMemoryNodeRegistry()
  await registry.setDrain('n1', true)
  let accepting = true
  await startLone(t, registry, (on) => { accepting = on })
  assert.equal(accepting, false)
  assert.equal((await registry.get('n1'))?.draining, true)
})
