import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { CounterStore } from '../../src/stores/counter-store.ts'
import { waitUntil } from '../helpers/eventually.ts'

export function counterStoreSpec (name: string, build: (t: TestContext) => Promise<CounterStore>): void {
  test(`${name}: hits count up within a window and report when it ends`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const k = randomUUID()
    const before = Date.now()
    const first = await store.hit(k, 60_000)
    assert.equal(first.count, 1)
    assert.ok(first.resetAt > before + 50_000 && first.resetAt <= Date.now() + 60_000)
    assert.equal((await store.hit(k, 60_000)).count, 2)
    assert.equal((await store.peek(k)).count, 2)
  })

  test(`${name}: a window ends and counting starts again`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const k = randomUUID()
    await store.hit(k, 100)
    await store.hit(k, 100)
    await new Promise((resolve) => setTimeout(resolve, 250))
    assert.equal((await store.peek(k)).count, 0)
    assert.equal((await store.hit(k, 100)).count, 1)
  })

  test(`${name}: keys count separately and reset clears one`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const [a, b] = [randomUUID(), randomUUID()]
    await store.hit(a, 60_000)
    await store.hit(a, 60_000)
    await store.hit(b, 60_000)
    await store.reset(a)
    assert.equal((await store.peek(a)).count, 0)
    assert.equal((await store.peek(b)).count, 1)
  })

  test(`${name}: concurrent hits are all counted`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const k = randomUUID()
    const counts = await Promise.all(Array.from({ length: 50 }, () => store.hit(k, 60_000)))
    assert.deepEqual(counts.map((c) => c.count).sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 1))
  })

  test(`${name}: hitAndPeek counts each hit in order, stops after the first over its limit, and peeks after the hits`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const [a, b, c, absent] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    await store.hit(c, 60_000)
    const before = Date.now()
    const first = await store.hitAndPeek([{ key: a, windowMs: 60_000, limit: 1 }, { key: b, windowMs: 60_000, limit: 5 }], [c, absent, b])
    assert.deepEqual(first.hits.map((h) => h.count), [1, 1])
    assert.ok(first.hits.every((h) => h.resetAt > before + 50_000 && h.resetAt <= Date.now() + 60_000))
    assert.deepEqual(first.peeks.map((p) => p.count), [1, 0, 1], 'the peek of b sees the hit before it')
    assert.ok((first.peeks[0]?.resetAt ?? 0) > before + 50_000)
    // a goes over its limit of 1: b is not counted.
    const second = await store.hitAndPeek([{ key: a, windowMs: 60_000, limit: 1 }, { key: b, windowMs: 60_000, limit: 5 }], [b])
    assert.deepEqual(second.hits.map((h) => h.count), [2])
    assert.deepEqual(second.peeks.map((p) => p.count), [1])
    assert.equal((await store.peek(a)).count, 2)
    assert.equal((await store.peek(b)).count, 1)
    const peekOnly = await store.hitAndPeek([], [a, absent])
    assert.deepEqual(peekOnly.hits, [])
    assert.deepEqual(peekOnly.peeks.map((p) => p.count), [2, 0])
  })

  test(`${name}: a hitAndPeek hit counts \`by\` hits at once, opens its window, and is limited like that many`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const [a, b] = [randomUUID(), randomUUID()]
    const before = Date.now()
    const first = await store.hitAndPeek([{ key: a, windowMs: 60_000, limit: 100, by: 7 }], [a])
    assert.deepEqual(first.hits.map((h) => h.count), [7])
    assert.ok((first.hits[0]?.resetAt ?? 0) > before + 50_000, 'the window opened by a hit of 7 lasts its length')
    assert.deepEqual(first.peeks.map((p) => p.count), [7])
    // 7 + 5 goes over 10: b is not counted.
    const second = await store.hitAndPeek([{ key: a, windowMs: 60_000, limit: 10, by: 5 }, { key: b, windowMs: 60_000, limit: 10 }], [a, b])
    assert.deepEqual(second.hits.map((h) => h.count), [12])
    assert.ok((second.hits[0]?.resetAt ?? 0) > before + 50_000 && (second.hits[0]?.resetAt ?? 0) <= Date.now() + 60_000)
    assert.deepEqual(second.peeks.map((p) => p.count), [12, 0])
    assert.equal((await store.hit(a, 60_000)).count, 13)
  })

  test(`${name}: hitAndPeek opens windows of the given length, which end`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const k = randomUUID()
    await store.hitAndPeek([{ key: k, windowMs: 100, limit: 10 }], [])
    await waitUntil('the 100 ms window to end', async () => (await store.peek(k)).count === 0)
    assert.deepEqual((await store.hitAndPeek([{ key: k, windowMs: 60_000, limit: 10 }], [])).hits.map((h) => h.count), [1])
  })

  test(`${name}: concurrent hitAndPeek calls are all counted`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const k = randomUUID()
    const results = await Promise.all(Array.from({ length: 50 }, async () => await store.hitAndPeek([{ key: k, windowMs: 60_000, limit: 1000 }], [k])))
    assert.deepEqual(results.map((r) => r.hits[0]?.count).sort((x, y) => (x ?? 0) - (y ?? 0)), Array.from({ length: 50 }, (_, i) => i + 1))
    assert.ok(results.every((r) => r.peeks[0]?.count === r.hits[0]?.count), 'each call is one atomic step')
  })
}
