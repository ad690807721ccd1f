import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { HistoryLimits, HistoryStore, NewHistoryEntry } from '../../src/stores/history-store.ts'

const entry = (pushId: string, sentAt = Date.now(), data: unknown = { n: 1 }): NewHistoryEntry =>
  ({ pushId, sentAt, expiresAt: sentAt + 60_000, qos: 1, data })

export function historyStoreSpec (name: string, build: (t: TestContext, limits: HistoryLimits) => Promise<HistoryStore>): void {
  const roomy = { maxMessages: 1000, maxAgeMs: 3600_000 }

  test(`${name}: ids start at 1 and increase strictly per device, and entries come back as stored`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const [a, b] = [randomUUID(), randomUUID()]
    const first = await store.append(a, entry('p1', Date.now(), { text: 'hi', list: [], obj: {} }))
    assert.equal(first.id, 1)
    assert.equal((await store.append(a, entry('p2'))).id, 2)
    assert.equal((await store.append(b, entry('p3'))).id, 1)
    assert.deepEqual(await store.get(a, 1), first)
    assert.equal(await store.get(a, 9), undefined)
  })

  test(`${name}: an entry keeps its push's trace id, and an entry without one reads back without one`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const d = randomUUID()
    const traced = await store.append(d, { ...entry('p1'), traceId: 'a'.repeat(32) })
    await store.append(d, entry('p2'))
    assert.equal((await store.get(d, traced.id))?.traceId, 'a'.repeat(32))
    assert.deepEqual((await store.range(d, { limit: 10 })).map((e) => e.traceId), ['a'.repeat(32), undefined])
    assert.equal(Object.hasOwn(await store.get(d, 2) ?? {}, 'traceId'), false)
  })

  test(`${name}: concurrent appends to one device get distinct ids with no gaps`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const d = randomUUID()
    const ids = (await Promise.all(Array.from({ length: 50 }, (_, i) => store.append(d, entry(`p${i}`))))).map((e) => e.id)
    assert.deepEqual(ids.sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 1))
  })

  test(`${name}: range returns entries oldest first between after and before, up to limit`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const d = randomUUID()
    for (let i = 0; i < 10; i++) await store.append(d, entry(`p${i}`))
    assert.deepEqual((await store.range(d, { limit: 100 })).map((e) => e.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert.deepEqual((await store.range(d, { after: 3, limit: 4 })).map((e) => e.id), [4, 5, 6, 7])
    assert.deepEqual((await store.range(d, { after: 3, before: 6, limit: 100 })).map((e) => e.id), [4, 5])
    assert.deepEqual(await store.range(randomUUID(), { limit: 10 }), [])
  })

  test(`${name}: history is bounded by count, and ids keep increasing after old entries go`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, { maxMessages: 3, maxAgeMs: 3600_000 })
    const d = randomUUID()
    for (let i = 0; i < 5; i++) await store.append(d, entry(`p${i}`))
    assert.deepEqual((await store.range(d, { limit: 10 })).map((e) => e.id), [3, 4, 5])
    assert.equal((await store.append(d, entry('p5'))).id, 6)
  })

  test(`${name}: history is bounded by age`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, { maxMessages: 100, maxAgeMs: 60_000 })
    const d = randomUUID()
    await store.append(d, entry('old', Date.now() - 120_000))
    await store.append(d, entry('new'))
    assert.deepEqual((await store.range(d, { limit: 10 })).map((e) => e.pushId), ['new'])
  })

  test(`${name}: the delivered mark only goes up`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const d = randomUUID()
    assert.equal(await store.delivered(d), 0)
    await store.markDelivered(d, 5)
    await store.markDelivered(d, 3)
    assert.equal(await store.delivered(d), 5)
  })

  test(`${name}: undelivered returns the entries above the delivered mark minus the margin, oldest first, up to limit`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const d = randomUUID()
    assert.deepEqual(await store.undelivered(d, 2, 10), [])
    for (let i = 1; i <= 6; i++) await store.append(d, entry(`p${i}`))
    assert.deepEqual((await store.undelivered(d, 2, 10)).map((e) => e.id), [1, 2, 3, 4, 5, 6])
    await store.markDelivered(d, 4)
    assert.deepEqual((await store.undelivered(d, 2, 10)).map((e) => e.id), [3, 4, 5, 6])
    assert.deepEqual((await store.undelivered(d, 0, 1)).map((e) => e.id), [5])
    assert.deepEqual((await store.undelivered(d, 10, 2)).map((e) => e.id), [1, 2])
  })

  test(`${name}: clear forgets one device's entries, ids and mark; its next entry is id 1 again; others keep theirs`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, roomy)
    const [a, b] = [randomUUID(), randomUUID()]
    for (let i = 0; i < 3; i++) await store.append(a, entry(`p${i}`))
    await store.append(b, entry('q'))
    await store.markDelivered(a, 2)
    await store.clear(a)
    assert.deepEqual(await store.range(a, { limit: 10 }), [])
    assert.equal(await store.delivered(a), 0)
    assert.deepEqual(await store.undelivered(a, 10, 10), [])
    assert.equal((await store.append(a, entry('fresh'))).id, 1)
    assert.equal((await store.range(b, { limit: 10 })).length, 1)
    await store.clear(randomUUID())
  })
}
