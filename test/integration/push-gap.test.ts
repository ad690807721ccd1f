import assert from 'node:assert/strict'
import { test } from 'node:test'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'
import { connectRedis } from '../helpers/services.ts'

// docs/design.md: Redis drops a busy subscriber connection, and whatever was published on it meanwhile is
// gone. A node whose delivery-order connection dropped must still get the pushes of that gap to the devices
// connected to it, without those devices reconnecting.

async function push (p: TestPlatform, body: unknown): Promise<string> {
  const res = await p.api('POST', '/v1/admin/push', body)
  assert.equal(res.status, 202, JSON.stringify(res.body))
  return res.body.pushId as string
}

test('a broadcast and a targeted push sent while a node\'s delivery-order connection is down reach the devices connected there once it is back', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const b = await startTestPlatform(t, { clusterPrefix: prefix })
  const id = `gap-${prefix.replace(/[^A-Za-z0-9]/g, '').slice(-8)}`
  const { token } = await a.provision(id)
  const device = await connectDevice(t, b.mqttUrl, id, token)
  await device.subscribeAsync([`devices/${id}/down`, 'broadcast/all'], { qos: 1 })
  const got = new Map<string, string>()
  device.on('message', (topic, payload) => { got.set((JSON.parse(payload.toString()) as { pushId: string }).pushId, topic) })

  const redis = connectRedis(t)
  const resyncs = (): Array<Record<string, unknown>> => b.logs.filter((l) => l.event === 'push_resync')
  // The order must be published inside the gap: right after the kill, before ioredis reconnects (100 ms at the
  // earliest). The node's resync reports whether it missed the broadcast; if the order got through, try again.
  let missed: { broadcast: string, targeted: string } | undefined
  for (let attempt = 0; attempt < 5 && missed === undefined; attempt++) {
    const clients = (await redis.call('CLIENT', 'LIST') as string).split('\n')
    const conn = clients.find((line) => line.includes(`name=pushline:${b.config.nodeId}:push `))
    assert.ok(conn !== undefined, 'node B has a named delivery-order connection')
    const before = resyncs().length
    await redis.call('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(conn)?.[1] as string)
    const [broadcast, targeted] = await Promise.all([
      push(a, { all: true, data: { gap: attempt }, ttlSeconds: 60 }),
      push(a, { deviceId: id, data: { gap: attempt }, ttlSeconds: 60 })
    ])
    assert.ok(await eventually(async () => resyncs().length > before, 30_000, 50), 'node B resyncs once its connection is back')
    const resync = resyncs().at(-1) as { broadcasts: number }
    assert.ok(await eventually(() => got.has(broadcast) && got.has(targeted)), 'both pushes arrive, through the gap or not')
    // The targeted push fell into the gap too when B never got its order and wrote it by catching the device up.
    const onB = (event: string, how?: string): boolean => b.logs.some((l) => l.event === event && l.pushId === targeted && (how === undefined || l.how === how))
    if (resync.broadcasts > 0 && !onB('push_delivery_order') && onB('downlink_written', 'catch-up')) missed = { broadcast, targeted }
  }
  assert.ok(missed !== undefined, 'in five attempts, the broadcast and the targeted orders never both fell into the gap')

  assert.ok(await eventually(async () => got.has(missed.broadcast) && got.has(missed.targeted)),
    `both pushes of the gap arrive without a reconnect (got ${JSON.stringify([...got.keys()])})`)
  assert.equal(got.get(missed.broadcast), 'broadcast/all')
  assert.equal(got.get(missed.targeted), `devices/${id}/down`)
  // MQTT.js PUBACKs both: the receipts say so.
  for (const pushId of [missed.broadcast, missed.targeted]) {
    let counts: Record<string, number> = {}
    await eventually(async () => {
      counts = (await a.api('GET', `/v1/admin/push/${pushId}`)).body.counts as Record<string, number>
      return counts.delivered === 1
    })
    assert.equal(counts.delivered, 1, `push ${pushId}: ${JSON.stringify(counts)}`)
  }
})
