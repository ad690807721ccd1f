import assert from 'node:assert/strict'
import { test } from 'node:test'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { connectRedis } from '../helpers/services.ts'

// docs/design.md: when Redis drops a node's subscriber connection, everything published meanwhile never
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
  /** B's subscriber connection, once it has its subscriptions (again). */
  const subscriber = async (): Promise<string | undefined> => (await redis.call('CLIENT', 'LIST') as string).split('\n')
    .find((line) => line.includes(`name=pushline:${b.config.nodeId}:mq-sub`) && (/ sub=(\d+)/.exec(line)?.[1] ?? '0') !== '0')
  const publish = (i: number): Promise<void> => new Promise((resolve, reject) => a.broker?.aedes.publish(
    { cmd: 'publish', topic: 'devices/gap-dev/down', payload: Buffer.from(`m${i}`), qos: 1, retain: false, dup: false },
    (err) => err ? reject(err) : resolve()))

  // A message is in the gap when B's subscriber is still not back after it was published (once back it stays).
  // On a busy machine B may be back before the first one: then the attempt proves nothing and we try again.
  let sent = 0
  let inGap = 0
  let gaps = 0
  for (let attempt = 0; attempt < 5 && inGap === 0; attempt++) {
    const sub = await subscriber()
    assert.ok(sub !== undefined, 'node B has a named subscriber connection with its subscriptions')
    await redis.call('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(sub)?.[1] as string)
    gaps++
    for (let i = 0; i < 200; i++) {
      await publish(sent++)
      if (await subscriber() !== undefined) break
      inGap++
    }
    assert.ok(await eventually(() => b.logs.filter((l) => l.event === 'pubsub_gap').length === gaps), 'the gap is logged')
  }
  assert.ok(inGap > 0, 'no attempt published a message inside the gap')
  t.diagnostic(`${inGap} of ${sent} messages published inside the gap`)
  // One more after the gap, as a device would also get.
  await publish(sent++)

  assert.ok(await eventually(() => got.size === sent), `${got.size} of ${sent} arrived`)
  assert.deepEqual([...got].sort(), Array.from({ length: sent }, (_, i) => `m${i}`).sort(), 'every message arrived, without the device reconnecting')
  assert.equal(await b.metric('pushline_pubsub_gaps_total'), gaps)
  assert.ok(await b.metric('pushline_pubsub_gap_seconds_total') > 0)
  assert.equal((await b.api('GET', '/readyz', undefined, {})).status, 200, 'ready again once resubscribed')
})
