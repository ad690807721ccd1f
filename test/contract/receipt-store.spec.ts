import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { RECENT_PUSHES, type PushRecord, type ReceiptStore } from '../../src/stores/receipt-store.ts'

const record = (): PushRecord => ({ pushId: randomUUID(), target: { kind: 'devices', count: 3 }, qos: 1, ttlSeconds: 60, createdAt: Date.now() })

export function receiptStoreSpec (name: string, build: (t: TestContext) => Promise<ReceiptStore>): void {
  test(`${name}: recent pushes come newest first with their counts, and the list keeps only the latest ${RECENT_PUSHES}`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const base = Date.now()
    const made: PushRecord[] = []
    for (let i = 0; i < RECENT_PUSHES + 5; i++) made.push({ ...record(), createdAt: base + i })
    for (let i = 0; i < made.length; i += 100) await Promise.all(made.slice(i, i + 100).map((r) => store.createPush(r, 1)))
    const newest = made.at(-1) as PushRecord
    await store.open(newest.pushId, [{ deviceId: 'a', state: 'queued', id: 1 }], 1)
    await store.transition(newest.pushId, 'a', 'delivered', 2)
    const top = await store.recent(3)
    assert.deepEqual(top.map((s) => s.pushId), made.slice(-3).reverse().map((r) => r.pushId))
    assert.equal(top[0]?.counts.delivered, 1)
    const all = await store.recent(RECENT_PUSHES + 100)
    assert.equal(all.length, RECENT_PUSHES)
    assert.equal(all.at(-1)?.pushId, made[5]?.pushId)
  })

  test(`${name}: a push record reads back with progress and zero counts`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r = record()
    await store.createPush(r, 3)
    await store.progress(r.pushId, 2)
    let s = await store.getPush(r.pushId)
    assert.deepEqual(s?.target, r.target)
    assert.equal(s?.processed, 2)
    assert.equal(s?.done, false)
    assert.deepEqual(s?.counts, { queued: 0, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 0 })
    await store.progress(r.pushId, 1, { total: 3 })
    s = await store.getPush(r.pushId)
    assert.equal(s?.processed, 3)
    assert.equal(s?.total, 3)
    assert.equal(s?.done, true)
    assert.equal(await store.getPush(randomUUID()), undefined)
  })

  test(`${name}: a push record keeps the trace id of the request that made it`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r = { ...record(), traceId: 'b'.repeat(32) }
    await store.createPush(r, 1)
    assert.equal((await store.getPush(r.pushId))?.traceId, 'b'.repeat(32))
  })

  test(`${name}: receipts open once, and states move only forward with exact counts`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r = record()
    await store.createPush(r, 3)
    await store.open(r.pushId, [{ deviceId: 'a', state: 'queued', id: 1 }, { deviceId: 'b', state: 'queued', id: 7 }, { deviceId: 'x', state: 'failed', reason: 'unknown device' }], 1)
    await store.open(r.pushId, [{ deviceId: 'a', state: 'queued', id: 2 }], 2)
    assert.equal((await store.getReceipt(r.pushId, 'a'))?.id, 1)
    // A move resolves the receipt as it now is (with its message id); no move resolves undefined.
    assert.deepEqual(await store.transition(r.pushId, 'a', 'sent', 3), { deviceId: 'a', state: 'sent', id: 1, at: 3 })
    assert.equal(await store.transition(r.pushId, 'a', 'sent', 4), undefined)
    assert.deepEqual(await store.transition(r.pushId, 'a', 'delivered', 5), { deviceId: 'a', state: 'delivered', id: 1, at: 5 })
    assert.equal(await store.transition(r.pushId, 'a', 'sent', 6), undefined)
    assert.equal(await store.transition(r.pushId, 'a', 'expired', 6), undefined)
    assert.deepEqual(await store.transition(r.pushId, 'a', 'acked', 7), { deviceId: 'a', state: 'acked', id: 1, at: 7 })
    assert.equal(await store.transition(r.pushId, 'a', 'failed', 8), undefined)
    assert.deepEqual(await store.transition(r.pushId, 'b', 'expired', 9), { deviceId: 'b', state: 'expired', id: 7, at: 9 })
    assert.equal(await store.transition(r.pushId, 'b', 'delivered', 10), undefined)
    assert.equal(await store.transition(r.pushId, 'x', 'queued', 10), undefined)
    assert.equal(await store.transition(r.pushId, 'nobody', 'sent', 10), undefined)
    assert.deepEqual((await store.getPush(r.pushId))?.counts, { queued: 0, sent: 0, delivered: 0, acked: 1, expired: 1, failed: 1 })
    assert.deepEqual(await store.getReceipt(r.pushId, 'a'), { deviceId: 'a', state: 'acked', id: 1, at: 7 })
    assert.deepEqual(await store.getReceipt(r.pushId, 'x'), { deviceId: 'x', state: 'failed', reason: 'unknown device', at: 1 })
  })

  test(`${name}: concurrent repeated transitions count once`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r = record()
    await store.createPush(r, 1)
    await store.open(r.pushId, [{ deviceId: 'a', state: 'queued', id: 1 }], 1)
    const moved = await Promise.all([...Array.from({ length: 20 }, () => store.transition(r.pushId, 'a', 'delivered', 2)), ...Array.from({ length: 20 }, () => store.transition(r.pushId, 'a', 'sent', 2))])
    assert.ok(moved.filter((m) => m !== undefined).length <= 2)
    assert.deepEqual((await store.getPush(r.pushId))?.counts, { queued: 0, sent: 0, delivered: 1, acked: 0, expired: 0, failed: 0 })
  })

  test(`${name}: receipts page in device id order`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r = record()
    await store.createPush(r, 5)
    await store.open(r.pushId, ['d3', 'd1', 'd5', 'd2', 'd4'].map((deviceId) => ({ deviceId, state: 'queued' as const })), 1)
    const first = await store.list(r.pushId, undefined, 2)
    assert.deepEqual(first.receipts.map((x) => x.deviceId), ['d1', 'd2'])
    const second = await store.list(r.pushId, first.next, 2)
    assert.deepEqual(second.receipts.map((x) => x.deviceId), ['d3', 'd4'])
    const last = await store.list(r.pushId, second.next, 2)
    assert.deepEqual(last.receipts.map((x) => x.deviceId), ['d5'])
    assert.equal(last.next, undefined)
  })

  test(`${name}: count-only pushes count each device once, in the furthest state it reached`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r: PushRecord = { ...record(), target: { kind: 'group', group: 'g' } }
    await store.createPush(r, undefined)
    const counts = async (): Promise<unknown> => (await store.getPush(r.pushId))?.counts
    // a, b, c written at QoS 1; a PUBACKs in the same flush; d written at QoS 0.
    assert.deepEqual(await store.countDeliveries(r.pushId, ['a', 'b', 'c'], ['a', 'd']), { sent: 2, delivered: 2, sentIds: ['a', 'b', 'c'], deliveredIds: ['a', 'd'] })
    assert.deepEqual(await counts(), { queued: 0, sent: 2, delivered: 2, acked: 0, expired: 0, failed: 0 })
    // b dropped and gets it again (a resend), then PUBACKs it twice (catch-up and live); a's PUBACK repeats.
    assert.deepEqual(await store.countDeliveries(r.pushId, ['b', 'a'], []), { sent: 0, delivered: 0, sentIds: [], deliveredIds: [] })
    assert.deepEqual(await store.countDeliveries(r.pushId, [], ['b', 'b', 'a']), { sent: -1, delivered: 1, sentIds: [], deliveredIds: ['b'] })
    assert.deepEqual(await counts(), { queued: 0, sent: 1, delivered: 3, acked: 0, expired: 0, failed: 0 })
    // c acks without a PUBACK counted: it moves from sent to acked; a later PUBACK of c counts nothing.
    assert.deepEqual(await store.countAcks(r.pushId, ['c']), ['c'])
    assert.deepEqual(await store.countDeliveries(r.pushId, ['c'], ['c']), { sent: 0, delivered: 0, sentIds: [], deliveredIds: [] })
    assert.deepEqual(await counts(), { queued: 0, sent: 0, delivered: 3, acked: 1, expired: 0, failed: 0 })
    assert.deepEqual(await store.countedStates(r.pushId, ['a', 'b', 'c', 'd', 'e']), ['delivered', 'delivered', 'acked', 'delivered', undefined], 'where each device is counted')
    await store.countDeliveries(r.pushId, ['e'], [])
    assert.deepEqual(await store.countedStates(r.pushId, ['e']), ['sent'])
    assert.deepEqual(await store.countedStates('no-such-push', ['a']), [undefined])
    assert.deepEqual(await store.countedStates(r.pushId, []), [])
    // Targeted and unknown pushes count nothing here.
    const targeted = record()
    await store.createPush(targeted, 3)
    assert.deepEqual(await store.countDeliveries(targeted.pushId, ['a'], ['a']), { sent: 0, delivered: 0, sentIds: [], deliveredIds: [] })
    assert.deepEqual((await store.getPush(targeted.pushId))?.counts, { queued: 0, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 0 })
    assert.deepEqual(await store.countDeliveries('no-such-push', ['a'], ['a']), { sent: 0, delivered: 0, sentIds: [], deliveredIds: [] })
  })

  test(`${name}: of several count-only pushes, those a device has neither got nor acked are found at once`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const pushes = await Promise.all(Array.from({ length: 4 }, async () => {
      const r: PushRecord = { ...record(), target: { kind: 'all' } }
      await store.createPush(r, undefined)
      return r.pushId
    }))
    const [got, acked, sentOnly, none] = pushes as [string, string, string, string]
    await store.countDeliveries(got, [], ['dev'])
    await store.countDeliveries(acked, ['dev'], [])
    await store.countAcks(acked, ['dev'])
    await store.countDeliveries(sentOnly, ['dev'], [])
    assert.deepEqual(await store.notReceived('dev', pushes), [sentOnly, none])
    assert.deepEqual(await store.notReceived('other', pushes), pushes)
    assert.deepEqual(await store.notReceived('dev', []), [])
  })

  test(`${name}: the expiry sweep waits for the job, then expires queued and sent receipts page by page, once`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r: PushRecord = { ...record(), ttlSeconds: 1, createdAt: 1000 }
    await store.createPush(r, 5)
    await store.open(r.pushId, ['d1', 'd2', 'd3', 'd4'].map((deviceId, i) => ({ deviceId, state: 'queued' as const, id: i + 1 })), 1000)
    await store.open(r.pushId, [{ deviceId: 'd5', state: 'failed', reason: 'unknown device' }], 1000)
    await store.transition(r.pushId, 'd2', 'sent', 1100)
    await store.transition(r.pushId, 'd3', 'delivered', 1100)
    assert.deepEqual(await store.dueForExpiry(1999, 10), [])
    assert.ok((await store.dueForExpiry(2000, 10)).includes(r.pushId))
    // The job has not finished: nothing moves yet.
    assert.deepEqual(await store.sweepExpired(r.pushId, 2, 2000), { expired: [], finished: false })
    await store.progress(r.pushId, 5, { total: 5 })
    // Two sweepers at once take consecutive pages; nothing is counted twice. Each resolves the receipts it expired.
    const pages = await Promise.all([store.sweepExpired(r.pushId, 2, 2000), store.sweepExpired(r.pushId, 2, 2000)])
    assert.deepEqual([...pages[0].expired, ...pages[1].expired].sort((a, b) => a.deviceId < b.deviceId ? -1 : 1), [
      { deviceId: 'd1', state: 'expired', id: 1, at: 2000 },
      { deviceId: 'd2', state: 'expired', id: 2, at: 2000 },
      { deviceId: 'd4', state: 'expired', id: 4, at: 2000 }
    ])
    assert.deepEqual(await store.sweepExpired(r.pushId, 2, 2000), { expired: [], finished: true })
    assert.deepEqual((await store.getPush(r.pushId))?.counts, { queued: 0, sent: 0, delivered: 1, acked: 0, expired: 3, failed: 1 })
    assert.equal((await store.getReceipt(r.pushId, 'd2'))?.state, 'expired')
    assert.ok(!(await store.dueForExpiry(2000, 1000)).includes(r.pushId))
    assert.deepEqual(await store.sweepExpired(r.pushId, 2, 2000), { expired: [], finished: true })
  })

  test(`${name}: application acks of a count-only push count once per device that received it, and not for targeted pushes`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const r: PushRecord = { ...record(), target: { kind: 'all' } }
    await store.createPush(r, undefined)
    await store.countDeliveries(r.pushId, [], ['a', 'b', 'c'])
    assert.deepEqual(await store.countAcks(r.pushId, ['a', 'b']), ['a', 'b'])
    assert.deepEqual(await store.countAcks(r.pushId, ['b', 'c', 'a', 'c']), ['c'])
    assert.deepEqual((await store.getPush(r.pushId))?.counts, { queued: 0, sent: 0, delivered: 0, acked: 3, expired: 0, failed: 0 })
    // A device the push was never written to (outside the group, say) cannot ack it, and is not remembered as an
    // acker: once it does get the push (a catch-up), its ack counts.
    assert.deepEqual(await store.countAcks(r.pushId, ['d']), [])
    assert.deepEqual((await store.getPush(r.pushId))?.counts, { queued: 0, sent: 0, delivered: 0, acked: 3, expired: 0, failed: 0 })
    assert.deepEqual(await store.notReceived('d', [r.pushId]), [r.pushId])
    await store.countDeliveries(r.pushId, ['d'], [])
    assert.deepEqual(await store.countAcks(r.pushId, ['d']), ['d'])
    assert.deepEqual((await store.getPush(r.pushId))?.counts, { queued: 0, sent: 0, delivered: 0, acked: 4, expired: 0, failed: 0 })
    const targeted = record()
    await store.createPush(targeted, 3)
    assert.deepEqual(await store.countAcks(targeted.pushId, ['a']), [])
    assert.deepEqual(await store.countAcks('no-such-push', ['a']), [])
  })
}
