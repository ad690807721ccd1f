import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { waitUntil } from '../helpers/eventually.ts'
import pino from 'pino'
import type { BroadcastDelivery, DeliveryChannel, TargetedDelivery } from '../../src/push/delivery-channel.ts'
import { createPushService } from '../../src/push/push-service.ts'
import { createMemoryDeviceStore } from '../../src/stores/memory-device-store.ts'
import { createMemoryHistoryStore } from '../../src/stores/memory-history-store.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import { createMemoryReceiptStore } from '../../src/stores/memory-receipt-store.ts'
import { createMemoryPushJobStore } from '../../src/stores/memory-push-job-store.ts'
import { createMemoryBroadcastStore } from '../../src/stores/memory-broadcast-store.ts'

async function setup (t: TestContext, ids: string[]) {
  const devices = createMemoryDeviceStore()
  for (const id of ids) await devices.create({ id, groups: [], metadata: {}, secretHash: 'x', enabled: true, createdAt: 1, updatedAt: 1 })
  const presence = createMemoryPresenceStore()
  const sent: Array<{ nodeId: string, batch: readonly TargetedDelivery[] }> = []
  const broadcasts: BroadcastDelivery[] = []
  const channel: DeliveryChannel = {
    async sendTo (nodeId, batch) { sent.push({ nodeId, batch }) },
    async broadcast (order) { broadcasts.push(order) },
    async listen () {},
    async close () {}
  }
  let clock = 1_000_000
  const store = createMemoryReceiptStore()
  // Counts the sweeper's ticks: each asks which pushes are due, and a tick starts only after the previous one ended.
  const ticks = { n: 0 }
  const receipts: typeof store = { ...store, dueForExpiry: async (...args) => { ticks.n++; return await store.dueForExpiry(...args) } }
  const history = createMemoryHistoryStore({ maxMessages: 100, maxAgeMs: 3600_000 }, () => clock)
  const jobs = createMemoryPushJobStore({ devices, history, receipts })
  const live = createMemoryBroadcastStore(() => clock)
  const service = createPushService({ devices, presence, history, receipts, broadcasts: live, jobs, channel, logger: pino({ level: 'silent' }), maxTtlSeconds: 3600, maxDataBytes: 1024, now: () => clock, sweepMs: 5, sweepBatch: 2 })
  t.after(() => service.close())
  return { service, presence, sent, broadcasts, live, receipts, history, ticks, advance: (ms: number) => { clock += ms } }
}

test('a list push appends history before sending, fails unknown ids, and sends online devices\' orders to their node', { timeout: 120_000 }, async (t) => {
  const s = await setup(t, ['a', 'b', 'c'])
  await s.presence.connect('b', 'node-2', 1)
  const { pushId } = await s.service.push({ deviceIds: ['a', 'b', 'c', 'zz', 'b'], data: { x: 1 }, ttlSeconds: 60 })
  await s.service.idle()
  const view = await s.service.get(pushId, undefined, 10)
  assert.deepEqual(view.progress, { processed: 4, total: 4, done: true })
  assert.deepEqual(view.counts, { queued: 3, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 1 })
  assert.deepEqual(view.devices.map((r) => [r.deviceId, r.state, r.id, r.reason]), [['a', 'queued', 1, undefined], ['b', 'queued', 1, undefined], ['c', 'queued', 1, undefined], ['zz', 'failed', undefined, 'unknown device']])
  assert.deepEqual(s.sent.map((o) => [o.nodeId, o.batch.map((d) => [d.deviceId, d.entry.id, d.entry.pushId])]), [['node-2', [['b', 1, pushId]]]])
  assert.deepEqual((await s.history.get('b', 1))?.data, { x: 1 })
})

test('after a push\'s ttl the sweeper marks what is still queued or sent as expired, a bounded page per tick, without anyone reading it', { timeout: 120_000 }, async (t) => {
  const s = await setup(t, ['a', 'b', 'c'])
  const { pushId } = await s.service.push({ deviceIds: ['a', 'b', 'c'], data: 1, ttlSeconds: 60 })
  await s.service.idle()
  await s.receipts.transition(pushId, 'a', 'sent', 2)
  await s.receipts.transition(pushId, 'b', 'delivered', 2)
  // Marker: two more sweeper ticks, so at least one whole sweep ran after the transitions and before the ttl.
  const seen = s.ticks.n
  await waitUntil('two sweeper ticks', () => s.ticks.n >= seen + 2, 30_000, 5)
  assert.equal((await s.receipts.getPush(pushId))?.counts.queued, 1)
  s.advance(61_000)
  await waitUntil('the sweeper to expire both receipts', async () => (await s.receipts.getPush(pushId))?.counts.expired === 2, 30_000, 5)
  assert.deepEqual((await s.receipts.getPush(pushId))?.counts, { queued: 0, sent: 0, delivered: 1, acked: 0, expired: 2, failed: 0 })
  assert.equal((await s.receipts.getReceipt(pushId, 'c'))?.state, 'expired')
})

test('a pull returns entries in id order and moves those within ttl to delivered', { timeout: 120_000 }, async (t) => {
  const s = await setup(t, ['a'])
  const first = await s.service.push({ deviceId: 'a', data: 'one', ttlSeconds: 10 })
  s.advance(20_000)
  const second = await s.service.push({ deviceId: 'a', data: 'two', ttlSeconds: 60 })
  const pulled = await s.service.pull('a', 0, 10)
  assert.deepEqual(pulled.map((m) => [m.id, m.data]), [[1, 'one'], [2, 'two']])
  assert.equal((await s.receipts.getReceipt(first.pushId, 'a'))?.state, 'queued')
  assert.equal((await s.receipts.getReceipt(second.pushId, 'a'))?.state, 'delivered')
  assert.equal(await s.history.delivered('a'), 2)
})

test('group and broadcast pushes send one order on the broadcast topic, are kept for their ttl and keep no receipts', { timeout: 120_000 }, async (t) => {
  const s = await setup(t, [])
  const g = await s.service.push({ group: 'hall', data: 1, qos: 0, ttlSeconds: 30 })
  const all = await s.service.push({ all: true, data: 2, ttlSeconds: 60 })
  assert.deepEqual(s.broadcasts.map((b) => [b.pushId, b.topic, b.qos]), [[g.pushId, 'broadcast/groups/hall', 0], [all.pushId, 'broadcast/all', 1]])
  assert.deepEqual((await s.service.get(all.pushId, undefined, 10)).devices, [])
  assert.deepEqual(await s.live.liveOn('broadcast/groups/hall', 0), [s.broadcasts[0]])
  s.advance(30_000)
  assert.deepEqual((await s.live.live(0)).map((b) => b.pushId), [all.pushId])
})
