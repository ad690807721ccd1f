import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createStores } from '../../src/stores/create-stores.ts'
import type { ReceiptStore } from '../../src/stores/receipt-store.ts'

const limits = { maxMessages: 10, maxAgeMs: 60_000 }
const expiresAt = Date.now() + 60_000

test('memory stores: the job store opens a chunk\'s receipts through the wrapped receipt store', { timeout: 30_000 }, async () => {
  const opened: string[] = []
  const wrap = (store: ReceiptStore): ReceiptStore => ({
    ...store,
    async open (pushId, receipts, at) {
      opened.push(...receipts.map((r) => `${r.deviceId}:${r.state}`))
      await store.open(pushId, receipts, at)
    }
  })
  const stores = createStores({ redis: undefined, prefix: 'x:', historyLimits: limits, wrapReceipts: wrap })
  await stores.devices.create({ id: 'd1', groups: [], metadata: {}, secretHash: 'h', enabled: true, createdAt: 1, updatedAt: 1 })
  await stores.receipts.createPush({ pushId: 'p', target: { kind: 'devices', count: 2 }, qos: 1, ttlSeconds: 60, createdAt: 1 }, 2)
  await stores.jobs.create('p', ['d1', 'nobody'], { data: 1, qos: 1, expiresAt, traceId: 't' })
  const chunk = await stores.jobs.next('p', 10)
  assert.deepEqual(await stores.jobs.commit('p', 0, chunk?.ids ?? [], [], { pushId: 'p', sentAt: Date.now(), expiresAt, qos: 1, data: 1, traceId: 't' }), [1, null])
  assert.deepEqual(opened, ['d1:queued', 'nobody:failed'], 'the job\'s receipts went through the wrapper')
  assert.equal((await stores.receipts.getReceipt('p', 'd1'))?.state, 'queued', 'and the wrapped store is the one the process reads')
  assert.equal((await stores.history.range('d1', { limit: 10 })).length, 1, 'the job store writes to the same history store')
})
