import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { Device, DeviceStore } from '../../src/stores/device-store.ts'

// One suite every DeviceStore must pass (the aedes-persistence abstract-suite pattern).
// `build` returns a fresh, empty store and registers its own teardown on `t`.
export function deviceStoreSpec (name: string, build: (t: TestContext) => Promise<DeviceStore>): void {
  const device = (id: string, groups: string[] = []): Device =>
    ({ id, groups, metadata: { model: 'x1' }, secretHash: 'scrypt$10$a$b', enabled: true, createdAt: 1, updatedAt: 1 })
  const uid = (): string => `d-${randomUUID().slice(0, 8)}`

  test(`${name}: a created device reads back field for field`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid(), ['g1', 'g2'])
    assert.equal(await store.create(d), true)
    assert.deepEqual(await store.get(d.id), d)
    assert.equal(await store.count(), 1)
  })

  test(`${name}: creating a taken id writes nothing and says so`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid(), ['a'])
    await store.create(d)
    assert.equal(await store.create({ ...d, groups: ['b'], secretHash: 'other' }), false)
    assert.deepEqual(await store.get(d.id), d)
    assert.equal((await store.list({ limit: 10, group: 'b' })).devices.length, 0)
  })

  test(`${name}: an unknown device reads as undefined and cannot be updated or deleted`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    assert.equal(await store.get('nope'), undefined)
    assert.equal(await store.update('nope', { enabled: false }, 5), undefined)
    assert.equal(await store.delete('nope'), false)
  })

  test(`${name}: list pages through devices in id order without gaps or repeats`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const ids = Array.from({ length: 25 }, (_, i) => `dev-${String(i).padStart(3, '0')}`)
    for (const id of [...ids].reverse()) await store.create(device(id))
    const seen: string[] = []
    let after: string | undefined
    let pages = 0
    do {
      const page = await store.list({ limit: 10, ...(after !== undefined && { after }) })
      seen.push(...page.devices.map((d) => d.id))
      after = page.next
      pages++
    } while (after !== undefined)
    assert.deepEqual(seen, ids)
    assert.equal(pages, 3)
  })

  test(`${name}: list by group returns exactly the group's members`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    await store.create(device('a1', ['red']))
    await store.create(device('a2', ['blue']))
    await store.create(device('a3', ['red', 'blue']))
    assert.deepEqual((await store.list({ limit: 10, group: 'red' })).devices.map((d) => d.id), ['a1', 'a3'])
    assert.deepEqual((await store.list({ limit: 10, group: 'green' })).devices, [])
  })

  test(`${name}: an update applies the patch, moves group membership and bumps updatedAt`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid(), ['red'])
    await store.create(d)
    const u = await store.update(d.id, { enabled: false, groups: ['blue'] }, 99)
    assert.deepEqual(u, { ...d, enabled: false, groups: ['blue'], updatedAt: 99 })
    assert.deepEqual(await store.get(d.id), u)
    assert.deepEqual((await store.list({ limit: 10, group: 'red' })).devices, [])
    assert.deepEqual((await store.list({ limit: 10, group: 'blue' })).devices.map((x) => x.id), [d.id])
    // A revoke's time (client certificates issued until then are refused) reads back and stays through other patches.
    await store.update(d.id, { revokedAt: 1234 }, 100)
    await store.update(d.id, { enabled: true }, 101)
    assert.deepEqual(await store.get(d.id), { ...u, enabled: true, revokedAt: 1234, updatedAt: 101 })
  })

  test(`${name}: concurrent updates to one device are all applied`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid())
    await store.create(d)
    await Promise.all([
      store.update(d.id, { enabled: false }, 10),
      store.update(d.id, { secretHash: 'new' }, 11),
      store.update(d.id, { metadata: { v: 2 } }, 12)
    ])
    const after = await store.get(d.id)
    assert.equal(after?.enabled, false)
    assert.equal(after?.secretHash, 'new')
    assert.deepEqual(after?.metadata, { v: 2 })
  })

  test(`${name}: delete removes the device from every index`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid(), ['red'])
    await store.create(d)
    assert.equal(await store.delete(d.id), true)
    assert.equal(await store.get(d.id), undefined)
    assert.equal(await store.count(), 0)
    assert.deepEqual((await store.list({ limit: 10 })).devices, [])
    assert.deepEqual((await store.list({ limit: 10, group: 'red' })).devices, [])
    assert.equal(await store.create(d), true, 'the id is free again')
  })

  test(`${name}: the store hands out copies, so callers cannot change stored state`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid(), ['red'])
    await store.create(d)
    const got = await store.get(d.id) as unknown as { groups: string[] }
    got.groups.push('mutated')
    assert.deepEqual((await store.get(d.id))?.groups, ['red'])
  })

  test(`${name}: createMany creates the free ids, leaves taken ones untouched and says which is which, in order`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const taken = device(uid(), ['old'])
    await store.create(taken)
    const fresh = Array.from({ length: 1203 }, (_, i) => device(`m-${String(i).padStart(5, '0')}`, i % 2 === 0 ? ['even'] : []))
    const input = [...fresh.slice(0, 600), { ...taken, groups: ['new'], secretHash: 'other' }, ...fresh.slice(600)]
    const result = await store.createMany(input)
    assert.equal(result.length, input.length)
    assert.deepEqual(result.map((ok, i) => ok ? -1 : i).filter((i) => i >= 0), [600])
    assert.deepEqual(await store.get(taken.id), taken, 'the taken id keeps its device')
    assert.equal((await store.list({ limit: 10, group: 'new' })).devices.length, 0)
    assert.deepEqual(await store.get('m-01202'), fresh[1202])
    assert.equal(await store.count(), 1204)
    assert.equal((await store.list({ limit: 1000, group: 'even' })).devices.length, 602)
    assert.deepEqual(await store.createMany([]), [])
  })

  test(`${name}: replaceSecretHash swaps the stored secret only while it is still the expected one`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = device(uid(), ['g'])
    await store.create(d)
    assert.equal(await store.replaceSecretHash(d.id, 'not-the-current-one', 'x'), false)
    assert.equal((await store.get(d.id))?.secretHash, d.secretHash)
    assert.equal(await store.replaceSecretHash(d.id, d.secretHash, 'sha256$new'), true)
    assert.deepEqual(await store.get(d.id), { ...d, secretHash: 'sha256$new' }, 'nothing else changes')
    assert.equal(await store.replaceSecretHash(d.id, d.secretHash, 'sha256$late'), false, 'a second swap from the old value loses')
    assert.equal(await store.replaceSecretHash('nobody', 'a', 'b'), false)
  })
}
