import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import pino from 'pino'
import { Registry } from 'prom-client'
import { createDownlinkAcks } from '../../src/push/downlink-acks.ts'
import { createInFlightDownlinks } from '../../src/push/in-flight-downlinks.ts'
import { createPushAgentContext } from '../../src/push/push-agent-context.ts'
import { registerPushMetrics } from '../../src/push/push-metrics.ts'
import { createMemoryHistoryStore } from '../../src/stores/memory-history-store.ts'
import { createMemoryReceiptStore } from '../../src/stores/memory-receipt-store.ts'
import { recordingBroadcastCounts } from '../helpers/broadcast-counts.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { openPacketPipe, startAedes } from '../helpers/packet-pipe.ts'

async function setup (t: TestContext) {
  const clock = 1_000_000
  const history = createMemoryHistoryStore({ maxMessages: 100, maxAgeMs: 3600_000 }, () => clock)
  const receipts = createMemoryReceiptStore()
  const metrics = registerPushMetrics(new Registry())
  const context = createPushAgentContext({ broker: () => undefined, logger: pino({ level: 'silent' }), history, receipts, now: () => clock, metrics })
  const { counts, counted } = recordingBroadcastCounts()
  const inFlight = createInFlightDownlinks()
  const acks = createDownlinkAcks({ context, inFlight, counts })
  // Two entries of device d1, each the one receipt of its push, written at QoS 1 (sent).
  for (const pushId of ['p1', 'p2']) {
    const entry = await history.append('d1', { pushId, sentAt: clock, expiresAt: clock + 60_000, qos: 1, data: { n: pushId } })
    await receipts.createPush({ pushId, target: { kind: 'device', deviceId: 'd1' }, qos: 1, ttlSeconds: 60, createdAt: clock }, 1)
    await receipts.open(pushId, [{ deviceId: 'd1', state: 'sent', id: entry.id }], clock)
  }
  const pipe = openPacketPipe(await startAedes(t))
  // Never sends CONNECT: ended here, not by aedes's connect timeout.
  t.after(() => { pipe.conn.destroy() })
  const { client } = pipe
  const state = async (pushId: string): Promise<string | undefined> => (await receipts.getReceipt(pushId, 'd1'))?.state
  const delivered = async (kind: string): Promise<number> => (await metrics.downlinksDelivered.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0
  return { acks, inFlight, client, history, counted, state, delivered }
}

test('a PUBACK of a tracked device downlink makes its receipt delivered and raises the mark, once; a broadcast\'s is counted as got', { timeout: 60_000 }, async (t) => {
  const s = await setup(t)
  const id = s.inFlight.track(s.client, { kind: 'device', deviceId: 'd1', pushId: 'p1', id: 1, traceId: undefined })
  const other = s.inFlight.track(s.client, { kind: 'broadcast', pushId: 'b1' })
  assert.equal(s.acks.onPuback(s.client, id), true)
  await waitUntil('the receipt is delivered and the mark raised', async () => await s.state('p1') === 'delivered' && await s.history.delivered('d1') === 1)
  assert.equal(await s.delivered('device'), 1)
  // Repeated: not the agent's any more (aedes handles it), counted once.
  assert.equal(s.acks.onPuback(s.client, id), false)
  assert.equal(await s.delivered('device'), 1)
  assert.equal(s.acks.onPuback(s.client, other), true)
  assert.deepEqual(s.counted, [['got', 'b1', s.client.id]])
  assert.equal(await s.delivered('broadcast'), 1)
})

test('an application ack {"id": n} makes entry n\'s receipt acked; {"id": "<pushId>"} is counted for the push', { timeout: 60_000 }, async (t) => {
  const s = await setup(t)
  s.acks.onDeviceAck('d1', Buffer.from(JSON.stringify({ id: 2 })))
  await waitUntil('entry 2 acked', async () => await s.state('p2') === 'acked' && await s.history.delivered('d1') === 2)
  assert.equal(await s.state('p1'), 'sent')
  s.acks.onDeviceAck('d1', Buffer.from(JSON.stringify({ id: 'b1' })))
  assert.deepEqual(s.counted, [['acked', 'b1', 'd1']])
})

test('an application ack settles once its receipt is acked, and fails when the store does: the broker holds its PUBACK until then', { timeout: 60_000 }, async (t) => {
  const s = await setup(t)
  await s.acks.onDeviceAck('d1', Buffer.from(JSON.stringify({ id: 1 })))
  assert.equal(await s.state('p1'), 'acked')
  assert.equal(await s.history.delivered('d1'), 1)
  // Ignored acks and group acks have nothing to wait for.
  await s.acks.onDeviceAck('d1', Buffer.from('not json'))
  await s.acks.onDeviceAck('d1', Buffer.from(JSON.stringify({ id: 'b1' })))
  s.history.get = async () => { throw new Error('Command timed out') }
  await assert.rejects(s.acks.onDeviceAck('d1', Buffer.from(JSON.stringify({ id: 2 }))), /Command timed out/)
  assert.equal(await s.state('p2'), 'sent')
})

test('malformed application acks are ignored: nothing counted, no receipt moved', { timeout: 60_000 }, async (t) => {
  const s = await setup(t)
  const bad = ['not json', 'null', '{}', '{"id":0}', '{"id":-1}', '{"id":1.5}', '{"id":""}', JSON.stringify({ id: 'x'.repeat(129) }),
    '{"id":true}', '{"id":[1]}', '{"id":9007199254740993}', '{"id":3}']
  for (const payload of bad) s.acks.onDeviceAck('d1', Buffer.from(payload))
  // The marker: a valid ack sent after them, handled in order by the same store.
  s.acks.onDeviceAck('d1', Buffer.from('{"id":2}'))
  await waitUntil('the marker ack is applied', async () => await s.state('p2') === 'acked')
  assert.equal(await s.state('p1'), 'sent')
  assert.equal(await s.history.delivered('d1'), 2)
  assert.deepEqual(s.counted, [])
})
