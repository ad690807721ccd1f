import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { DeviceStore } from '../../src/stores/device-store.ts'
import type { HistoryStore } from '../../src/stores/history-store.ts'
import type { PushJobStore } from '../../src/stores/push-job-store.ts'
import type { ReceiptStore } from '../../src/stores/receipt-store.ts'

export interface PushJobParts {
  readonly jobs: PushJobStore
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  readonly devices: DeviceStore
}

const body = { data: { x: 1 }, qos: 1 as const, expiresAt: Date.now() + 60_000 }

export function pushJobStoreSpec (name: string, build: (t: TestContext) => Promise<PushJobParts>): void {
  test(`${name}: a chunk commits once: history entries, receipts, progress and cursor move together`, { timeout: 120_000 }, async (t) => {
    const { jobs, history, receipts, devices } = await build(t)
    const pushId = `p-${randomUUID()}`
    for (const id of ['a', 'b']) await devices.create({ id, groups: [], metadata: {}, secretHash: 'x', enabled: true, createdAt: 1, updatedAt: 1 })
    await receipts.createPush({ pushId, target: { kind: 'devices', count: 4 }, qos: 1, ttlSeconds: 60, createdAt: Date.now() }, 4)
    await jobs.create(pushId, ['a', 'zz', 'b', 'not valid!'], body)
    const chunk = await jobs.next(pushId, 10)
    assert.deepEqual(chunk, { cursor: 0, ids: ['a', 'zz', 'b', 'not valid!'], total: 4, body, ordered: 0 })
    const entry = { pushId, sentAt: Date.now(), expiresAt: body.expiresAt, qos: body.qos, data: body.data }
    assert.deepEqual(await jobs.commit(pushId, 0, ['a', 'zz', 'b'], ['not valid!'], entry), [1, null, 1])
    // The same chunk again (a second worker, or a retry after a crash): nothing is written twice.
    assert.equal(await jobs.commit(pushId, 0, ['a', 'zz', 'b'], ['not valid!'], entry), undefined)
    assert.deepEqual((await history.range('a', { limit: 10 })).map((e) => [e.id, e.pushId, e.data]), [[1, pushId, { x: 1 }]])
    assert.deepEqual(await history.range('zz', { limit: 10 }), [])
    const status = await receipts.getPush(pushId)
    assert.equal(status?.processed, 4)
    assert.deepEqual(status?.counts, { queued: 2, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 2 })
    assert.deepEqual(await receipts.getReceipt(pushId, 'zz').then((r) => [r?.state, r?.reason]), ['failed', 'unknown device'])
    assert.deepEqual(await receipts.getReceipt(pushId, 'a').then((r) => [r?.state, r?.id]), ['queued', 1])
    assert.deepEqual((await receipts.list(pushId, undefined, 10)).receipts.map((r) => r.deviceId), ['a', 'b', 'not valid!', 'zz'])
    assert.deepEqual(await jobs.next(pushId, 10).then((c) => [c?.cursor, c?.ids]), [4, []])
    await jobs.finish(pushId)
    assert.equal(await jobs.next(pushId, 10), undefined)
  })

  test(`${name}: how far delivery orders went out moves forward only, never past the cursor, and ids read back by position`, { timeout: 120_000 }, async (t) => {
    const { jobs, receipts } = await build(t)
    const pushId = `p-${randomUUID()}`
    await receipts.createPush({ pushId, target: { kind: 'devices', count: 4 }, qos: 1, ttlSeconds: 60, createdAt: Date.now() }, 4)
    await jobs.create(pushId, ['a', 'b', 'c', 'd'], body)
    const entry = { pushId, sentAt: Date.now(), expiresAt: body.expiresAt, qos: body.qos, data: body.data }
    await jobs.commit(pushId, 0, [], ['a', 'b', 'c'], entry)
    await jobs.markOrdered(pushId, 2)
    assert.equal((await jobs.next(pushId, 10))?.ordered, 2)
    await jobs.markOrdered(pushId, 1)
    await jobs.markOrdered(pushId, 4)
    assert.deepEqual(await jobs.next(pushId, 10).then((c) => [c?.cursor, c?.ordered, c?.ids]), [3, 3, ['d']])
    assert.deepEqual(await jobs.range(pushId, 1, 3), ['b', 'c'])
    assert.deepEqual(await jobs.range(pushId, 3, 3), [])
    await jobs.finish(pushId)
    await jobs.markOrdered(pushId, 4)
    assert.equal(await jobs.next(pushId, 10), undefined)
  })

  test(`${name}: a job is held by one owner until its lease lapses, then another owner takes it over`, { timeout: 120_000 }, async (t) => {
    const { jobs } = await build(t)
    const pushId = `p-${randomUUID()}`
    await jobs.create(pushId, ['a'], body)
    const at = Date.now()
    assert.equal(await jobs.claim('one', 1000, at), pushId)
    assert.equal(await jobs.claim('two', 1000, at + 500), undefined)
    assert.equal(await jobs.renew(pushId, 'one', 1000, at + 900), true)
    assert.equal(await jobs.claim('two', 1000, at + 1500), undefined)
    assert.equal(await jobs.claim('two', 1000, at + 2000), pushId)
    assert.equal(await jobs.renew(pushId, 'one', 1000, at + 2100), false)
    await jobs.finish(pushId)
    assert.equal(await jobs.claim('three', 1000, at + 9000), undefined)
  })
}
