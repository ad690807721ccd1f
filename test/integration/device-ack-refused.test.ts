import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { bounded } from '../helpers/eventually.ts'
import { deliveredPush } from '../helpers/delivered-push.ts'
import { startTestPlatform } from '../helpers/platform.ts'
import { redisUrl, uniquePrefix } from '../helpers/services.ts'

// A QoS 1 application ack is acknowledged only once its receipt is acked in the store. The real Redis of
// scripts/services.sh refuses every write while the device acks (min-replicas-to-write 1, and it has no replica), so
// the receipt cannot move: the node must close the connection without the PUBACK, and the device's MQTT client,
// which keeps the unacknowledged publish, sends it again on its next connection.

test('a QoS 1 application ack the store cannot record is not acknowledged; sent again, it makes the receipt acked', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix() })
  const { client, downlinkId, push } = await deliveredPush(t, p, 'ack-1')
  const receipt = async (): Promise<string | undefined> => (await push()).devices[0]?.state

  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  t.after(async () => {
    await redis.config('SET', 'min-replicas-to-write', '0')
    await redis.quit()
  })
  await redis.config('SET', 'min-replicas-to-write', '1')
  let acknowledged = false
  const closed = new Promise<void>((resolve) => { client.once('close', () => { resolve() }) })
  const ack = client.publishAsync('devices/ack-1/ack', JSON.stringify({ id: downlinkId }), { qos: 1 }).then(() => { acknowledged = true })
  await bounded('the node to close the connection', closed)
  // A PUBACK written before the close would have been read before it.
  assert.equal(acknowledged, false, 'the ack was acknowledged although its receipt did not move')
  assert.ok(p.logs.some((l) => l.event === 'device_ack_failed' && l.clientId === 'ack-1'))
  assert.equal(await receipt(), 'delivered')

  await redis.config('SET', 'min-replicas-to-write', '0')
  // The same client with the publishes it keeps unacknowledged: MQTT.js sends them again once connected.
  client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore })
  await bounded('the ack sent again to be acknowledged', ack)
  assert.equal(await receipt(), 'acked')
})
