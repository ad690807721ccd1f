import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { Aedes } from 'aedes'
import { Registry } from 'prom-client'
import { createDownlinkWriter } from '../../src/push/downlink-writer.ts'
import { createInFlightDownlinks, type InFlight } from '../../src/push/in-flight-downlinks.ts'
import { createLiveBroadcasts } from '../../src/push/live-broadcasts.ts'
import { registerPushMetrics } from '../../src/push/push-metrics.ts'
import { recordingBroadcastCounts } from '../helpers/broadcast-counts.ts'
import { connectPacket, openPacketPipe, startAedes, subscribePacket, type PacketPipe } from '../helpers/packet-pipe.ts'

function setup () {
  const metrics = registerPushMetrics(new Registry())
  const { counts, counted } = recordingBroadcastCounts()
  const inFlight = createInFlightDownlinks()
  const writer = createDownlinkWriter({ nodeId: 'n1', context: { metrics }, inFlight, counts })
  const written = async (kind: string, qos: number): Promise<number> =>
    (await metrics.downlinks.get()).values.find((v) => v.labels.kind === kind && v.labels.qos === qos)?.value ?? 0
  return { writer, inFlight, counted, written }
}

/** A device connected to `aedes` with these subscriptions. */
async function device (t: TestContext, aedes: Aedes, id: string, filters: ReadonlyArray<readonly [string, 0 | 1]>): Promise<PacketPipe> {
  const pipe = openPacketPipe(aedes)
  t.after(() => { pipe.conn.destroy() })
  pipe.send(connectPacket(id))
  await pipe.next('connack')
  if (filters.length > 0) {
    pipe.send(subscribePacket(1, filters))
    await pipe.next('suback')
  }
  return pipe
}

/** Resolves once aedes has answered a PINGREQ sent now: anything written before it has arrived. */
async function settled (pipe: PacketPipe): Promise<void> {
  pipe.send({ cmd: 'pingreq' })
  await pipe.next('pingresp')
}

test('a targeted downlink goes out at the subscription\'s QoS: lowered to 0, or at 1 with the tracked packet id', { timeout: 60_000 }, async (t) => {
  const s = setup()
  const aedes = await startAedes(t)
  const tag: InFlight = { kind: 'device', deviceId: 'd1', pushId: 'p1', id: 1, traceId: undefined }
  const low = await device(t, aedes, 'd0', [['devices/d0/down', 0]])
  assert.equal(await s.writer.write(low.client, 'devices/d0/down', Buffer.from('{"id":1}'), 1, tag), 0)
  const lowered = await low.next('publish') as { qos: number, payload: Buffer }
  assert.equal(lowered.qos, 0)
  assert.equal(lowered.payload.toString(), '{"id":1}')
  assert.equal(await s.written('device', 0), 1)

  const high = await device(t, aedes, 'd1', [['devices/d1/down', 1]])
  assert.equal(await s.writer.write(high.client, 'devices/d1/down', Buffer.from('{"id":1}'), 1, tag), 1)
  const publish = await high.next('publish') as { qos: number, messageId: number }
  assert.equal(publish.qos, 1)
  assert.deepEqual(s.inFlight.settle(high.client, publish.messageId), tag)
  assert.equal(await s.written('device', 1), 1)
})

test('a broadcast is written only to a subscribed client, at the subscription\'s QoS, and counted as sent (QoS 1) or got (QoS 0)', { timeout: 60_000 }, async (t) => {
  const s = setup()
  const aedes = await startAedes(t)
  const cached = createLiveBroadcasts().add({ pushId: 'b1', topic: 'broadcast/all', qos: 1, sentAt: 1, expiresAt: Date.now() + 3600_000, data: { hello: 1 } })
  const tag: InFlight = { kind: 'broadcast', pushId: 'b1' }
  const none = await device(t, aedes, 'd-none', [])
  const zero = await device(t, aedes, 'd-zero', [['broadcast/all', 0]])
  const one = await device(t, aedes, 'd-one', [['broadcast/all', 1]])

  assert.equal(s.writer.writeBroadcast(none.client, cached, tag), undefined)
  assert.equal(s.writer.writeBroadcast(zero.client, cached, tag), 0)
  assert.equal(s.writer.writeBroadcast(one.client, cached, tag), 1)

  await settled(none)
  assert.equal(none.received.filter((p) => p.cmd === 'publish').length, 0)
  assert.equal((await zero.next('publish') as { qos: number }).qos, 0)
  const publish = await one.next('publish') as { qos: number, messageId: number, payload: Buffer }
  assert.equal(publish.qos, 1)
  assert.equal(JSON.parse(publish.payload.toString()).pushId, 'b1')
  assert.deepEqual(s.inFlight.settle(one.client, publish.messageId), tag)
  assert.deepEqual(s.counted, [['got', 'b1', 'd-zero'], ['sent', 'b1', 'd-one']])
  // The callers count broadcast writes (once per order, not per client).
  assert.equal(await s.written('broadcast', 1), 0)
})
