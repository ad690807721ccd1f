import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test, type TestContext } from 'node:test'
import type { Client } from 'aedes'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import type { ClusterMember } from '../../src/cluster/cluster-member.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import type { PresenceStore } from '../../src/stores/presence-store.ts'
import { steppedClusterMember } from '../helpers/cluster-member.ts'
import { waitUntil } from '../helpers/eventually.ts'

// Reconciliation closes a live connection only when a newer connection holds its presence entry (docs/cluster.md,
// Presence). Aedes can lose a live client from its client map: a closing connection's unregister deletes the map
// entry by id, also when a newer connection of the same id has been put there since. Such a client is still live
// (its socket is open) and must be judged by its presence entry, not by aedes's map.

const NODE = 'n1'

interface FakeClient { readonly id: string, closed: boolean, close: () => void }

interface Setup {
  readonly member: ClusterMember
  readonly presence: PresenceStore
  readonly client: FakeClient
  /** The next restore runs in the store and then fails as a timed-out reply does. */
  loseNextRestoreReply: () => void
  /** Registers another live connection of the same device here, as aedes does, and waits until its write is recorded. */
  connectAgain: () => Promise<FakeClient>
}

async function setUp (t: TestContext, deviceId: string): Promise<Setup> {
  const store = createMemoryPresenceStore()
  let loseReply = false
  const presence: PresenceStore = {
    ...store,
    async restore (entry) {
      const outcome = await store.restore(entry)
      if (loseReply) { loseReply = false; throw new Error('Command timed out') }
      return outcome
    }
  }
  const clients: FakeClient[] = []
  const newClient = (): FakeClient => {
    const c: FakeClient = { id: deviceId, closed: false, close () { this.closed = true } }
    clients.push(c)
    return c
  }
  const client = newClient()
  let connects = 0
  const member = steppedClusterMember(NODE, presence, (e) => { if (e.event === 'connected' && e.reason === undefined) connects++ })
  // Live clients that aedes's client map no longer holds: localClient finds nothing for their id.
  const live = (): Client[] => clients.filter((c) => !c.closed) as unknown as Client[]
  const aedes = new EventEmitter()
  const broker = { aedes, liveClients: live, liveSessions: () => live().length, localClient: () => undefined, setAccepting: () => {}, dropSession: async () => {} } as unknown as BrokerNode
  t.after(async () => { await member.stop() })
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })
  await waitUntil('the client\'s connect to be recorded', () => connects === 1, 30_000)
  return {
    member,
    presence,
    client,
    loseNextRestoreReply: () => { loseReply = true },
    async connectAgain () {
      const again = newClient()
      aedes.emit('client', again)
      await waitUntil('the second connect to be recorded', () => connects === 2, 30_000)
      return again
    }
  }
}

/** Runs ticks until a reconciliation has run (every second tick does); a ghost entry's removal marks it. */
async function reconcileOnce (s: Setup, ghost: string): Promise<void> {
  await s.presence.connect(ghost, NODE, Date.now())
  for (let i = 0; i < 4 && await s.presence.get(ghost) !== undefined; i++) await s.member.tick()
  assert.equal(await s.presence.get(ghost), undefined, 'a reconciliation ran and removed the ghost entry')
}

test('a live connection whose own restore ran but lost its reply is adopted, also when aedes\'s client map lost it: not closed as superseded', { timeout: 30_000 }, async (t) => {
  const s = await setUp(t, 'own-restore')
  const first = await s.presence.get('own-restore')
  assert.ok(first !== undefined)
  // A survivor's sweep (or any removal) takes the entry away; the next reconciliation restores it under a fresh
  // epoch in the store, but the reply is lost, so the node still knows the old epoch.
  await s.presence.disconnect('own-restore', NODE, first.epoch, Date.now())
  s.loseNextRestoreReply()
  // That pass stops at the failed restore, as a timed-out command stops it.
  for (let i = 0; i < 4 && await s.presence.get('own-restore') === undefined; i++) await s.member.tick()
  const restored = await s.presence.get('own-restore')
  assert.ok(restored !== undefined && restored.epoch > first.epoch && restored.connection === first.connection, 'the restore ran in the store')
  // The next pass finds a newer entry than the node knows: the connection's own.
  await reconcileOnce(s, 'ghost-2')
  assert.equal(s.client.closed, false, 'the connection nothing replaced stays open')
  assert.deepEqual(await s.presence.get('own-restore'), restored, 'presence keeps the restored entry')
})

test('a live connection that aedes\'s client map lost is closed when a newer live connection on its node holds the entry', { timeout: 30_000 }, async (t) => {
  const s = await setUp(t, 'replaced')
  // aedes registered a newer connection of the device without closing the lost one; both are open.
  const newer = await s.connectAgain()
  const held = await s.presence.get('replaced')
  await reconcileOnce(s, 'ghost-3')
  assert.equal(s.client.closed, true, 'the older connection was closed')
  assert.equal(newer.closed, false, 'the newer connection stays open')
  assert.deepEqual(await s.presence.get('replaced'), held, 'the newer connection keeps its entry')
})

test('a newer entry on this node left by a connection that closed unseen does not close the live one: the leftover is removed and the live one restored', { timeout: 30_000 }, async (t) => {
  const s = await setUp(t, 'leftover')
  const first = await s.presence.get('leftover')
  // A newer connection wrote its entry and then closed without a clientDisconnect (aedes's client map held
  // neither), so nothing removed its entry.
  const gone = await s.connectAgain()
  const left = await s.presence.get('leftover')
  assert.ok(first !== undefined && left !== undefined && left.epoch > first.epoch && left.connection !== first.connection)
  gone.closed = true
  await reconcileOnce(s, 'ghost-4')
  assert.equal(s.client.closed, false, 'the live connection nothing replaced stays open')
  const now = await s.presence.get('leftover')
  assert.ok(now !== undefined && now.connection === first.connection && now.epoch > left.epoch, 'presence names the live connection again, under a fresh epoch')
})
