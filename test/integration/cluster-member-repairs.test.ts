import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import type { Client } from 'aedes'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import type { PresenceEvent } from '../../src/cluster/cluster-member.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'
import type { PresenceStore } from '../../src/stores/presence-store.ts'
import { steppedClusterMember } from '../helpers/cluster-member.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { connectRedis, uniquePrefix } from '../helpers/services.ts'

// A node restarted under its id whose record a survivor saw expired: the survivor swept the entries of its live
// connections, and the previous process's entries of devices that did not come back are still in its index. One
// reconciliation repairs both on the real Redis presence store (docs/cluster.md, Restarted nodes, Late nodes), with
// the repairs of different devices in flight together rather than one round trip after another.

const NODE = 'repairs-node'
const LIVE = 200
const LEFT_BEHIND = 300

interface FakeClient { readonly id: string, closed: boolean, close: () => void }

/** The store, counting how many calls of each kind are in flight at once (the most seen). */
function counting (store: PresenceStore): { presence: PresenceStore, most: { restore: number, disconnect: number } } {
  const now = { restore: 0, disconnect: 0 }
  const most = { restore: 0, disconnect: 0 }
  const counted = <A extends unknown[], R>(kind: 'restore' | 'disconnect', call: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
    now[kind]++
    most[kind] = Math.max(most[kind], now[kind])
    try {
      return await call(...args)
    } finally {
      now[kind]--
    }
  }
  return { presence: { ...store, restore: counted('restore', store.restore), disconnect: counted('disconnect', store.disconnect) }, most }
}

test(`one reconciliation after a sweep and a restart: ${LIVE} live connections restored and ${LEFT_BEHIND} left-behind entries removed, repairs of different devices in flight together`, { timeout: 60_000 }, async (t) => {
  const store = createRedisPresenceStore({ redis: connectRedis(t), prefix: uniquePrefix() })
  const { presence, most } = counting(store)
  const events: PresenceEvent[] = []
  const member = steppedClusterMember(NODE, presence, (e) => { events.push(e) })
  const clients: FakeClient[] = Array.from({ length: LIVE }, (_, i): FakeClient => ({ id: `live-${i}`, closed: false, close () { this.closed = true } }))
  const live = (): Client[] => clients.filter((c) => !c.closed) as unknown as Client[]
  const broker = { aedes: new EventEmitter(), liveClients: live, liveSessions: () => live().length, localClient: (id: string) => live().find((c) => c.id === id), setAccepting: () => {}, dropSession: async () => {} } as unknown as BrokerNode
  t.after(async () => { await member.stop() })
  // start() records the connections that are already live, and runs the first tick.
  await member.start(broker, { mqtt: 'mqtt://127.0.0.1:1', ws: 'ws://127.0.0.1:2', http: 'http://127.0.0.1:3' })
  await waitUntil('every live connection recorded', () => events.filter((e) => e.event === 'connected').length === LIVE)
  assert.equal(await store.countNode(NODE), LIVE)

  await store.removeNode(NODE, Date.now())
  for (let i = 0; i < LEFT_BEHIND; i++) await store.connect(`gone-${i}`, NODE, Date.now(), undefined, `previous.${i}`)
  events.length = 0
  // Every second tick reconciles.
  await member.tick()

  const entries = await store.listNode(NODE)
  assert.deepEqual(entries.map((e) => e.deviceId).sort(), clients.map((c) => c.id).sort(), 'presence holds exactly the live connections')
  assert.equal(events.filter((e) => e.event === 'connected' && e.reason === 'restored').length, LIVE, 'each live connection announced restored once')
  assert.equal(events.filter((e) => e.event === 'disconnected' && e.reason === 'reconciled').length, LEFT_BEHIND, 'each left-behind entry announced removed once')
  assert.ok(clients.every((c) => !c.closed), 'no live connection closed')
  assert.ok(most.restore > 1, `restores in flight together (most at once: ${most.restore})`)
  assert.ok(most.disconnect > 1, `removals in flight together (most at once: ${most.disconnect})`)
})
