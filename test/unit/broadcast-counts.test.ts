import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBroadcastCounts } from '../../src/push/broadcast-counts.ts'
import { createMemoryReceiptStore } from '../../src/stores/memory-receipt-store.ts'

async function setup () {
  const receipts = createMemoryReceiptStore()
  await receipts.createPush({ pushId: 'b1', target: { kind: 'all' }, qos: 1, ttlSeconds: 60, createdAt: 0 }, 0)
  const failures: string[] = []
  const counts = createBroadcastCounts({ receipts, fail: (what) => () => { failures.push(what) } })
  const acked = async (): Promise<number> => (await receipts.getPush('b1'))?.counts.acked ?? -1
  return { receipts, counts, failures, acked }
}

test('an application ack of a broadcast settles only once a flush has counted it in the store', { timeout: 60_000 }, async () => {
  const s = await setup()
  s.counts.got('b1', 'd1')
  let settled = false
  const ack = s.counts.acked('b1', 'd1').then(() => { settled = true })
  // Nothing flushed yet: a broker holding the PUBACK on this promise has not acknowledged the ack.
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(settled, false)
  await s.counts.flush()
  await ack
  assert.equal(await s.acked(), 1)
})

test('an application ack whose flush fails is refused, and one sent again counts once', { timeout: 60_000 }, async () => {
  const s = await setup()
  s.counts.got('b1', 'd1')
  const countAcks = s.receipts.countAcks
  s.receipts.countAcks = async () => { throw new Error('Command timed out') }
  const ack = s.counts.acked('b1', 'd1')
  await s.counts.flush()
  await assert.rejects(ack, /Command timed out/)
  assert.deepEqual(s.failures, ['flush acks'])
  s.receipts.countAcks = countAcks
  const again = s.counts.acked('b1', 'd1')
  await s.counts.flush()
  await again
  assert.equal(await s.acked(), 1)
})

test('acks naming more distinct pushes between two flushes than can be live are dropped, not refused: no device can make the others reconnect', { timeout: 60_000 }, async () => {
  const s = await setup()
  const waiting = Array.from({ length: 1000 }, (_v, i) => s.counts.acked(`p${i}`, 'd1'))
  // Settled at once: no flush is coming in this test before it.
  await s.counts.acked('p-over', 'd1')
  // A push already waiting still takes acks, and they wait for the flush.
  const more = s.counts.acked('p0', 'd2')
  await s.counts.flush()
  await Promise.all([...waiting, more])
})

test('deliveries whose flush fails are counted by the next one, each device once and in its furthest state', { timeout: 60_000 }, async () => {
  const s = await setup()
  const countDeliveries = s.receipts.countDeliveries
  s.receipts.countDeliveries = async () => { throw new Error('Command timed out') }
  s.counts.sent('b1', 'd1')
  s.counts.sent('b1', 'd2')
  s.counts.got('b1', 'd3')
  await s.counts.flush()
  assert.deepEqual(s.failures, ['flush counts'])
  s.receipts.countDeliveries = countDeliveries
  // d2's PUBACK came between the two flushes.
  s.counts.got('b1', 'd2')
  await s.counts.flush()
  const counts = (await s.receipts.getPush('b1'))?.counts
  assert.equal(counts?.sent, 1)
  assert.equal(counts?.delivered, 2)
})

test('an ack of a push whose deliveries failed to flush is refused, not dropped: the store counts acks only of devices it has', { timeout: 60_000 }, async () => {
  const s = await setup()
  const countDeliveries = s.receipts.countDeliveries
  s.receipts.countDeliveries = async () => { throw new Error('Command timed out') }
  s.counts.got('b1', 'd1')
  const ack = s.counts.acked('b1', 'd1')
  await s.counts.flush()
  await assert.rejects(ack, /Command timed out/)
  s.receipts.countDeliveries = countDeliveries
  const again = s.counts.acked('b1', 'd1')
  await s.counts.flush()
  await again
  assert.equal(await s.acked(), 1)
})
