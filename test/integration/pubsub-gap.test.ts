import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { connectRedis } from '../helpers/services.ts'

// research/aedes.md §6: when Redis drops a node's subscriber connection, everything published meanwhile never
// reaches that node. The node must notice, count the gap, report not-ready meanwhile, and lose no QoS 1
// message that a persistent session had been promised.

test('a node whose Redis subscriber connection is killed counts the gap and still delivers every QoS 1 message published during it', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const b = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await a.provision('gap-dev')
  const device = await connectDevice(t, b.mqttUrl, 'gap-dev', token, { clean: false })
  await device.subscribeAsync('devices/gap-dev/down', { qos: 1 })
  const got = new Set<string>()
  device.on('message', (_topic, payload) => got.add(payload.toString()))

  const redis = connectRedis(t)
  const clients = (await redis.call('CLIENT', 'LIST') as string).split('\n')
  const sub = clients.find((line) => line.includes(`name=pushline:${b.config.nodeId}:mq-sub`))
  assert.ok(sub !== undefined, 'node B has a named subscriber connection')
  const id = /id=(\d+)/.exec(sub)?.[1] as string

  const publish = (i: number): Promise<void> => new Promise((resolve, reject) => a.broker?.aedes.publish(
    { cmd: 'publish', topic: 'devices/gap-dev/down', payload: Buffer.from(`m${i}`), qos: 1, retain: false, dup: false },
    (err) => err ? reject(err) : resolve()))
  await redis.call('CLIENT', 'KILL', 'ID', id)
  for (let i = 0; i < 20; i++) {
    await publish(i)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }

  const deadline = Date.now() + 10_000
  while (got.size < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual([...got].sort(), Array.from({ length: 20 }, (_, i) => `m${i}`).sort(), 'every message arrived, without the device reconnecting')
  assert.equal(await b.metric('pushline_pubsub_gaps_total'), 1)
  assert.ok(await b.metric('pushline_pubsub_gap_seconds_total') > 0)
  assert.ok(b.logs.some((l) => l.event === 'pubsub_gap'), 'the gap is logged')
  assert.equal((await b.api('GET', '/readyz', undefined, {})).status, 200, 'ready again once resubscribed')
})
