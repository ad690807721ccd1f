import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createClusterAssigner, rendezvous } from '../../src/cluster/node-assigner.ts'
import type { AssignmentStrategy } from '../../src/config/settings.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import type { NodeRecord, NodeRegistry } from '../../src/stores/node-registry.ts'
import { manualClock } from '../helpers/clock.ts'
import { waitUntil } from '../helpers/eventually.ts'
import type { CounterStore, LimitedHit } from '../../src/stores/counter-store.ts'

const node = (nodeId: string, over: Partial<NodeRecord> = {}): NodeRecord => ({
  nodeId, mqtt: `mqtt://${nodeId}:1883`, ws: `ws://${nodeId}:8083/mqtt`, http: `http://${nodeId}:3000`, connections: 0, weight: 1, draining: false, startedAt: 0, heartbeatAt: 0, ...over
})

async function setup (strategy: AssignmentStrategy, nodes: NodeRecord[]): Promise<(id: string) => Promise<string>> {
  const registry = createMemoryNodeRegistry()
  for (const n of nodes) await registry.heartbeat(n, 60_000)
  const assigner = createClusterAssigner({ registry, counters: createMemoryCounterStore(), strategy })
  return async (id) => (await assigner.assign(id)).nodeId
}

async function spread (assign: (id: string) => Promise<string>, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const id = await assign(`device-${i}`)
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

for (const strategy of ['least-connections', 'round-robin'] as const) {
  test(`${strategy}: 10,000 assignments over 3 nodes land within 5% of even`, { timeout: 120_000 }, async () => {
    const counts = await spread(await setup(strategy, [node('a'), node('b'), node('c')]), 10_000)
    assert.equal(counts.size, 3)
    for (const [id, c] of counts) assert.ok(Math.abs(c - 10_000 / 3) <= 10_000 / 3 * 0.05, `${id}: ${c}`)
  })
}

test('least-connections: a node that already holds more sessions gets fewer new devices until the load evens out', { timeout: 120_000 }, async () => {
  const counts = await spread(await setup('least-connections', [node('busy', { connections: 1000 }), node('idle')]), 1500)
  assert.ok(Math.abs((counts.get('idle') ?? 0) - 1250) <= 2, JSON.stringify([...counts]))
  assert.ok(Math.abs((counts.get('busy') ?? 0) - 250) <= 2)
})

test('weighted: devices are spread in proportion to node weight', { timeout: 120_000 }, async () => {
  const counts = await spread(await setup('weighted', [node('w1', { weight: 1 }), node('w3', { weight: 3 })]), 8000)
  const share = (counts.get('w3') ?? 0) / 8000
  assert.ok(Math.abs(share - 0.75) < 0.03, String(share))
})

test('consistent-hash: a device always gets the same node, and removing one of 4 nodes moves only the devices that were on it', { timeout: 120_000 }, async () => {
  const four = [node('n1'), node('n2'), node('n3'), node('n4')]
  const three = four.filter((n) => n.nodeId !== 'n3')
  const moved: string[] = []
  const perNode = new Map<string, number>()
  for (let i = 0; i < 10_000; i++) {
    const id = `device-${i}`
    const before = rendezvous(id, four)?.nodeId as string
    assert.equal(rendezvous(id, four)?.nodeId, before, 'stable')
    perNode.set(before, (perNode.get(before) ?? 0) + 1)
    const after = rendezvous(id, three)?.nodeId
    if (after !== before) moved.push(before)
  }
  assert.ok(moved.every((n) => n === 'n3'), 'only devices on the removed node move')
  assert.equal(moved.length, perNode.get('n3'))
  for (const c of perNode.values()) assert.ok(Math.abs(c - 2500) < 250, `roughly even: ${c}`)
})

for (const strategy of ['least-connections', 'weighted', 'consistent-hash', 'round-robin'] as const) {
  test(`${strategy}: draining nodes are never picked, and no live node means 503`, { timeout: 120_000 }, async () => {
    const counts = await spread(await setup(strategy, [node('ok'), node('leaving', { draining: true })]), 200)
    assert.deepEqual([...counts.keys()], ['ok'])
    const none = await setup(strategy, [node('leaving', { draining: true })])
    await assert.rejects(none('d'), (err: { code?: string, statusCode?: number }) => err.code === 'IOT_ERR_UNAVAILABLE' && err.statusCode === 503)
  })
}

test('dead nodes are never picked', { timeout: 120_000 }, async () => {
  const registry = createMemoryNodeRegistry()
  await registry.heartbeat(node('dead'), 50)
  await registry.heartbeat(node('alive'), 60_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const assigner = createClusterAssigner({ registry, counters: createMemoryCounterStore(), strategy: 'round-robin' })
  for (let i = 0; i < 10; i++) assert.equal((await assigner.assign(`d${i}`)).nodeId, 'alive')
})

test('the assigner reads the node records at most once per view age, sees a drain after it, and reads at once while it knows no node', { timeout: 30_000 }, async () => {
  const clock = manualClock(1_000_000)
  const registry = createMemoryNodeRegistry()
  let lists = 0
  const countingRegistry: NodeRegistry = { ...registry, list: async () => { lists++; return await registry.list() } }
  const assigner = createClusterAssigner({ registry: countingRegistry, counters: createMemoryCounterStore(), strategy: 'least-connections', viewMaxAgeMs: 250, now: clock.now })
  await assert.rejects(assigner.assign('d0'), (err: { code?: string }) => err.code === 'IOT_ERR_UNAVAILABLE')
  await registry.heartbeat(node('a'), 60_000)
  await registry.heartbeat(node('b'), 60_000)
  assert.equal((await Promise.all(Array.from({ length: 100 }, async (_, i) => await assigner.assign(`d${i}`)))).length, 100, 'no wait for the first nodes')
  assert.equal(lists, 2, 'one read for the empty view, one for the 100 concurrent assignments')
  await registry.heartbeat(node('a', { draining: true }), 60_000)
  clock.advance(249)
  await assigner.assign('x')
  assert.equal(lists, 2)
  clock.advance(1)
  const after = new Set(await Promise.all(Array.from({ length: 50 }, async (_, i) => (await assigner.assign(`y${i}`)).nodeId)))
  assert.deepEqual([...after], ['b'], 'the drain shows once the view is read again')
  assert.equal(lists, 3)
})

/** A counter store that records the hits it is sent, one entry per call. */
function recordingCounters (): { counters: CounterStore, calls: LimitedHit[][] } {
  const inner = createMemoryCounterStore()
  const calls: LimitedHit[][] = []
  const record = (hits: readonly LimitedHit[]): void => { if (hits.length > 0) calls.push([...hits]) }
  return {
    calls,
    counters: {
      ...inner,
      hit: async (key, windowMs) => { record([{ key, windowMs, limit: Infinity }]); return await inner.hit(key, windowMs) },
      hitAndPeek: async (hits, peeks) => { record(hits); return await inner.hitAndPeek(hits, peeks) }
    }
  }
}

test('least-connections sends its assignments to the shared counts as sums with its next read, not one write per device', { timeout: 30_000 }, async () => {
  const clock = manualClock(1_000_000)
  const registry = createMemoryNodeRegistry()
  await registry.heartbeat(node('a'), 60_000)
  const { counters, calls } = recordingCounters()
  const one = createClusterAssigner({ registry, counters, strategy: 'least-connections', viewMaxAgeMs: 250, now: clock.now })
  for (let i = 0; i < 100; i++) await one.assign(`d${i}`)
  assert.equal(calls.length, 0, 'no counter write per assignment')
  await registry.heartbeat(node('b'), 60_000)
  clock.advance(250)
  assert.equal((await one.assign('d100')).nodeId, 'b')
  assert.equal(calls.length, 1, 'one write, with the read')
  assert.deepEqual(calls[0]?.map((h) => [h.key, h.by]), [['assigned:a', 100]], 'the sums per node')
  // Another API process sharing the counts sends the next devices to the node the first one has not filled.
  const other = createClusterAssigner({ registry, counters, strategy: 'least-connections', viewMaxAgeMs: 250, now: clock.now })
  const picked = new Set(await Promise.all(Array.from({ length: 50 }, async (_, i) => (await other.assign(`e${i}`)).nodeId)))
  assert.deepEqual([...picked], ['b'])
})

test('least-connections sends its sums without a read, at most a view age after the first assignment', { timeout: 30_000 }, async () => {
  const registry = createMemoryNodeRegistry()
  await registry.heartbeat(node('a'), 60_000)
  const { counters } = recordingCounters()
  const assigner = createClusterAssigner({ registry, counters, strategy: 'least-connections', viewMaxAgeMs: 50 })
  for (let i = 0; i < 10; i++) await assigner.assign(`d${i}`)
  await waitUntil('the sums to reach the shared counts', async () => (await counters.peek('assigned:a')).count === 10)
})
