import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { BroadcastStore, LiveBroadcast } from '../../src/stores/broadcast-store.ts'
import { manualClock, type ManualClock } from '../helpers/clock.ts'

const live = (topic: string, expiresAt: number): LiveBroadcast =>
  ({ pushId: `p-${randomUUID()}`, topic, qos: 1, sentAt: Date.now(), data: { n: randomUUID() }, traceId: 'a'.repeat(32), expiresAt })

/** `build` gives the store `clock` as the clock that decides expiry. */
export function broadcastStoreSpec (name: string, build: (t: TestContext, clock: ManualClock) => Promise<BroadcastStore>): void {
  test(`${name}: live broadcasts read back by topic and all together, earliest expiry first, until they expire`, { timeout: 120_000 }, async (t) => {
    const store = await build(t, manualClock())
    const now = Date.now()
    const group = `broadcast/groups/g-${randomUUID()}`
    const later = live('broadcast/all', now + 60_000)
    const sooner = live('broadcast/all', now + 30_000)
    const grouped = live(group, now + 45_000)
    for (const b of [later, sooner, grouped]) await store.add(b)
    assert.deepEqual(await store.liveOn('broadcast/all', now), [sooner, later])
    assert.deepEqual(await store.liveOn(group, now), [grouped])
    assert.deepEqual(await store.liveOn('broadcast/groups/nobody', now), [])
    assert.deepEqual(await store.live(now), [sooner, grouped, later])
    assert.equal(await store.countLive(now), 3)
    assert.equal(await store.countLive(now + 50_000), 1)
    assert.equal(await store.countLive(now + 60_000), 0)
    // Read as at a later moment: what has expired by then is gone.
    assert.deepEqual(await store.liveOn('broadcast/all', now + 30_000), [later])
    assert.deepEqual(await store.live(now + 50_000), [later])
    assert.deepEqual(await store.live(now + 60_000), [])
  })

  test(`${name}: a broadcast whose ttl has already ended is not kept, and one whose ttl ends goes by itself`, { timeout: 120_000 }, async (t) => {
    const clock = manualClock()
    const store = await build(t, clock)
    const topic = `broadcast/groups/g-${randomUUID()}`
    await store.add(live(topic, clock.now() - 1))
    const short = live(topic, clock.now() + 60_000)
    const long = live(topic, clock.now() + 120_000)
    await store.add(short)
    await store.add(long)
    // Read as at time 0, so only the store's own expiry can make a broadcast disappear.
    assert.deepEqual(await store.liveOn(topic, 0), [short, long])
    clock.advance(59_999)
    assert.deepEqual(await store.liveOn(topic, 0), [short, long])
    clock.advance(1)
    assert.deepEqual(await store.liveOn(topic, 0), [long])
    assert.deepEqual(await store.live(0), [long])
  })
}
