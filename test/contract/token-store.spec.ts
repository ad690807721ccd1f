import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { TokenStore } from '../../src/stores/token-store.ts'

export function tokenStoreSpec (name: string, build: (t: TestContext) => Promise<TokenStore>): void {
  const uid = (): string => randomUUID()

  test(`${name}: a stored token reads back until it expires`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const now = Date.now()
    const rec = { deviceId: 'd1', expiresAt: now + 60_000, groups: ['g'] }
    const h = uid()
    await store.put(h, rec)
    assert.deepEqual(await store.get(h, now), rec)
    assert.equal(await store.get(h, now + 60_000), undefined, 'expired at expiresAt')
  })

  test(`${name}: an unknown token reads as undefined`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    assert.equal(await store.get(uid(), Date.now()), undefined)
  })

  test(`${name}: a token past its expiry is gone even for a caller with a stale clock`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const h = uid()
    await store.put(h, { deviceId: 'd1', expiresAt: Date.now() + 150, groups: [] })
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(await store.get(h, 0), undefined)
  })

  test(`${name}: revoking a device deletes all its tokens and no other device's`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const exp = Date.now() + 60_000
    const [a1, a2, b1] = [uid(), uid(), uid()]
    await store.put(a1, { deviceId: 'a', expiresAt: exp, groups: [] })
    await store.put(a2, { deviceId: 'a', expiresAt: exp, groups: [] })
    await store.put(b1, { deviceId: 'b', expiresAt: exp, groups: [] })
    assert.equal(await store.revokeDevice('a'), 2)
    assert.equal(await store.get(a1, Date.now()), undefined)
    assert.equal(await store.get(a2, Date.now()), undefined)
    assert.equal((await store.get(b1, Date.now()))?.deviceId, 'b')
    assert.equal(await store.revokeDevice('a'), 0)
  })

  test(`${name}: deleting one token leaves the device's others`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const exp = Date.now() + 60_000
    const [a1, a2] = [uid(), uid()]
    await store.put(a1, { deviceId: 'a', expiresAt: exp, groups: [] })
    await store.put(a2, { deviceId: 'a', expiresAt: exp, groups: [] })
    await store.delete(a1)
    assert.equal(await store.get(a1, Date.now()), undefined)
    assert.equal((await store.get(a2, Date.now()))?.deviceId, 'a')
    assert.equal(await store.revokeDevice('a'), 1)
  })

  test(`${name}: of many concurrent takes of one token exactly one gets it, and the token is gone`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const now = Date.now()
    const rec = { deviceId: 'a', expiresAt: now + 60_000, groups: ['g'] }
    const h = uid()
    await store.put(h, rec)
    const taken = await Promise.all(Array.from({ length: 16 }, async () => await store.take(h, 'a', now)))
    assert.equal(taken.filter((r) => r !== undefined).length, 1)
    assert.deepEqual(taken.find((r) => r !== undefined), rec)
    assert.equal(await store.get(h, now), undefined)
    assert.equal(await store.revokeDevice('a'), 0, 'the device no longer lists it')
  })

  test(`${name}: a take for another device, of an unknown or of an expired token gets nothing and leaves a live token alone`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const now = Date.now()
    const h = uid()
    await store.put(h, { deviceId: 'a', expiresAt: now + 60_000, groups: [] })
    assert.equal(await store.take(h, 'b', now), undefined)
    assert.equal((await store.get(h, now))?.deviceId, 'a')
    assert.equal(await store.take(uid(), 'a', now), undefined)
    assert.equal(await store.take(h, 'a', now + 60_000), undefined, 'expired for the caller\'s clock')
  })
}
