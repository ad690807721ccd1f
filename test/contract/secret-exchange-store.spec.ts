import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { hashSecret, legacyScryptHash } from '../../src/auth/secret-hash.ts'
import type { CounterStore } from '../../src/stores/counter-store.ts'
import type { Device, DeviceStore } from '../../src/stores/device-store.ts'
import type { SecretExchange, SecretExchangeStore } from '../../src/stores/secret-exchange-store.ts'
import type { TokenStore } from '../../src/stores/token-store.ts'

/** The exchange store and the three stores whose data it works on, over the same backing. */
export interface SecretExchangeStores {
  readonly exchanges: SecretExchangeStore
  readonly counters: CounterStore
  readonly devices: DeviceStore
  readonly tokens: TokenStore
}

export function secretExchangeStoreSpec (name: string, build: (t: TestContext) => Promise<SecretExchangeStores>): void {
  const secret = 'the-right-secret'
  const device = (id: string, over: Partial<Device> = {}): Device =>
    ({ id, groups: ['g1', 'g2'], metadata: { a: 1 }, secretHash: hashSecret(secret), enabled: true, createdAt: 1, updatedAt: 1, ...over })
  /** A request with its own keys; `limits` [address, device] per minute. */
  const request = (deviceId: string, presented: string, over: Partial<SecretExchange> = {}, limits = [100, 100]): SecretExchange => {
    const u = randomUUID()
    return {
      deviceId,
      hits: [
        { key: `addr:${u}`, windowMs: 60_000, limit: limits[0] as number },
        { key: `dev:${deviceId}`, windowMs: 60_000, limit: limits[1] as number }
      ],
      lockKey: `lock:${deviceId}`,
      failuresKey: `failures:${deviceId}`,
      maxFailures: 3,
      lockoutMs: 60_000,
      secretHash: hashSecret(presented),
      tokenHash: randomUUID(),
      expiresAt: Date.now() + 60_000,
      ...over
    }
  }

  test(`${name}: the right secret stores the token with the device's groups and clears the failure count`, { timeout: 120_000 }, async (t) => {
    const s = await build(t)
    const id = randomUUID()
    await s.devices.create(device(id))
    await s.counters.hit(`failures:${id}`, 60_000)
    const r = request(id, secret)
    assert.deepEqual(await s.exchanges.exchange(r), { status: 'issued' })
    assert.deepEqual(await s.tokens.get(r.tokenHash, Date.now()), { deviceId: id, expiresAt: r.expiresAt, groups: ['g1', 'g2'] })
    assert.equal((await s.counters.peek(`failures:${id}`)).count, 0)
    // The token is the device's like one TokenStore.put stored: revoking the device removes it.
    assert.equal(await s.tokens.revokeDevice(id), 1)
    assert.equal(await s.tokens.get(r.tokenHash, Date.now()), undefined)
  })

  test(`${name}: a device without groups gets a token record with an empty list`, { timeout: 120_000 }, async (t) => {
    const s = await build(t)
    const id = randomUUID()
    await s.devices.create(device(id, { groups: [] }))
    const r = request(id, secret)
    assert.deepEqual(await s.exchanges.exchange(r), { status: 'issued' })
    assert.deepEqual((await s.tokens.get(r.tokenHash, Date.now()))?.groups, [])
  })

  test(`${name}: wrong secrets and unknown ids count failures; the last allowed opens the lock, which refuses even the right secret`, { timeout: 120_000 }, async (t) => {
    const s = await build(t)
    const id = randomUUID()
    await s.devices.create(device(id))
    const unknown = request(randomUUID(), secret)
    assert.deepEqual(await s.exchanges.exchange(unknown), { status: 'bad-credentials' })
    assert.equal((await s.counters.peek(unknown.failuresKey)).count, 1)
    assert.equal(await s.tokens.get(unknown.tokenHash, Date.now()), undefined)
    for (const n of [1, 2]) {
      const r = request(id, 'wrong')
      assert.deepEqual(await s.exchanges.exchange(r), { status: 'bad-credentials' })
      assert.equal((await s.counters.peek(`failures:${id}`)).count, n)
      assert.equal(await s.tokens.get(r.tokenHash, Date.now()), undefined)
    }
    assert.deepEqual(await s.exchanges.exchange(request(id, 'wrong')), { status: 'bad-credentials' })
    assert.equal((await s.counters.peek(`failures:${id}`)).count, 0, 'the failure that locks starts the count again')
    const lock = await s.counters.peek(`lock:${id}`)
    assert.equal(lock.count, 1)
    const right = request(id, secret)
    const refused = await s.exchanges.exchange(right)
    assert.equal(refused.status, 'refused')
    if (refused.status !== 'refused') return
    assert.equal(refused.lock.count, 1)
    assert.ok(refused.lock.resetAt > Date.now() + 50_000 && refused.lock.resetAt <= Date.now() + 60_000)
    assert.deepEqual(refused.hits.map((h) => h.count), [1, 4])
    assert.equal(await s.tokens.get(right.tokenHash, Date.now()), undefined)
    assert.equal((await s.counters.peek(`failures:${id}`)).count, 0, 'a refused request is no failure')
  })

  test(`${name}: over the address limit the device is not counted; over the device limit nothing is checked`, { timeout: 120_000 }, async (t) => {
    const s = await build(t)
    const id = randomUUID()
    await s.devices.create(device(id))
    const first = request(id, secret, {}, [1, 2])
    assert.equal((await s.exchanges.exchange(first)).status, 'issued')
    const byAddress = await s.exchanges.exchange({ ...request(id, secret), hits: first.hits })
    assert.equal(byAddress.status, 'refused')
    if (byAddress.status === 'refused') assert.deepEqual(byAddress.hits.map((h) => h.count), [2])
    assert.equal((await s.counters.peek(`dev:${id}`)).count, 1, 'refused for its address: not counted against the device')
    assert.equal((await s.exchanges.exchange(request(id, secret, {}, [5, 2]))).status, 'issued')
    const byDevice = request(id, 'wrong', {}, [5, 2])
    const refused = await s.exchanges.exchange(byDevice)
    assert.equal(refused.status, 'refused')
    if (refused.status === 'refused') {
      assert.deepEqual(refused.hits.map((h) => h.count), [1, 3])
      assert.equal(refused.lock.count, 0)
    }
    assert.equal((await s.counters.peek(`failures:${id}`)).count, 0, 'a refused wrong secret is not checked')
  })

  test(`${name}: a disabled device with the right secret gets no token and keeps its failure count`, { timeout: 120_000 }, async (t) => {
    const s = await build(t)
    const id = randomUUID()
    await s.devices.create(device(id, { enabled: false }))
    await s.counters.hit(`failures:${id}`, 60_000)
    const r = request(id, secret)
    assert.deepEqual(await s.exchanges.exchange(r), { status: 'disabled' })
    assert.equal(await s.tokens.get(r.tokenHash, Date.now()), undefined)
    assert.equal((await s.counters.peek(`failures:${id}`)).count, 1)
  })

  test(`${name}: a secret stored in an older form is left to the caller, with the device and its failure count`, { timeout: 120_000 }, async (t) => {
    const s = await build(t)
    const id = randomUUID()
    const stored = device(id, { secretHash: await legacyScryptHash(secret, 10) })
    await s.devices.create(stored)
    await s.counters.hit(`failures:${id}`, 60_000)
    const r = request(id, 'anything')
    assert.deepEqual(await s.exchanges.exchange(r), { status: 'legacy', device: stored, failures: 1 })
    assert.equal(await s.tokens.get(r.tokenHash, Date.now()), undefined)
    assert.equal((await s.counters.peek(`failures:${id}`)).count, 1, 'nothing counted but the hits')
    assert.equal((await s.counters.peek(`dev:${id}`)).count, 1)
  })
}
