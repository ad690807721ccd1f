import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import pino from 'pino'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import { createClusterMember } from '../../src/cluster/cluster-member.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
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
