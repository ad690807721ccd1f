import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { CounterStore } from '../../src/stores/counter-store.ts'

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
}
