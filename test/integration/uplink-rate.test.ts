import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'

test('a device publishing faster than its uplink rate is slowed down, not dropped: every uplink arrives, in order', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_UPLINK_RATE_PER_SECOND: '50', PUSHLINE_UPLINK_RATE_BURST: '10' } })
  const { token } = await p.provision('rate-dev')
  const { token: otherToken } = await p.provision('rate-other')
  const client = await connectDevice(t, p.mqttUrl, 'rate-dev', token)
  const other = await connectDevice(t, p.mqttUrl, 'rate-other', otherToken)

  const start = Date.now()
  // 60 uplinks at once: 10 go through on the burst, 50 more at 50/s take about a second.
  const publishing = Promise.all(Array.from({ length: 60 }, (_, i) => client.publishAsync('devices/rate-dev/telemetry', `n${i}`, { qos: i % 2 === 0 ? 1 : 0 })))
  // The limit is per connection: another device gets its PUBACK while this one is held up (how fast is the
  // machine's business, not the gate's: the gate's per-connection bucket is tested in test/unit).
  assert.ok(await eventually(async () => await p.metric('pushline_uplinks_throttled_total') > 0), 'rate-dev is throttled')
  await other.publishAsync('devices/rate-other/telemetry', 'quick', { qos: 1 })
  await publishing
  await client.publishAsync('devices/rate-dev/events', 'last', { qos: 1 })
  const elapsed = Date.now() - start
  assert.ok(elapsed >= 900, `60 uplinks over a burst of 10 at 50/s took ${elapsed} ms`)

  const records = []
  for await (const r of readSpool(join(p.dataDir, 'spool'))) if (r.deviceId === 'rate-dev') records.push(r.payload.toString())
  assert.deepEqual(records, [...Array.from({ length: 60 }, (_, i) => `n${i}`), 'last'], 'nothing dropped, order kept (QoS 0 and 1 alike)')
  assert.ok(await p.metric('pushline_uplinks_throttled_total') >= 50)
  assert.equal(await p.metric('pushline_uplinks_dropped_total'), 0)
})
