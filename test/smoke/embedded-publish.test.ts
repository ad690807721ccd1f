// The platform in embedded mode, end to end over real TCP: a device registers, gets a token, connects with MQTT.js,
// publishes telemetry (acknowledged once it is in the spool) and receives a push. No Redis, no Kafka: this is what
// scripts/node-versions.sh runs on every supported Node.js version besides the unit tests.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'

test('embedded start and publish: telemetry lands in the spool, a push reaches the device', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('smoke-1', ['hall'])
  const device = await connectDevice(t, p.mqttUrl, 'smoke-1', token)
  await device.subscribeAsync('devices/smoke-1/down', { qos: 1 })

  await device.publishAsync('devices/smoke-1/telemetry', '{"t":21.5}', { qos: 1 })
  // The PUBACK comes once the uplink is on disk.
  const spooled = []
  for await (const record of readSpool(`${p.dataDir}/spool`)) spooled.push(record)
  assert.deepEqual(spooled.map((r) => [r.deviceId, r.topic, r.payload.toString()]), [['smoke-1', 'devices/smoke-1/telemetry', '{"t":21.5}']])

  const received = new Promise<[string, Buffer]>((resolve) => device.once('message', (topic, payload) => resolve([topic, payload])))
  const push = await p.api('POST', '/v1/admin/push', { deviceId: 'smoke-1', data: { cmd: 'reboot' } })
  assert.equal(push.status, 202)
  const [topic, payload] = await received
  assert.equal(topic, 'devices/smoke-1/down')
  const message = JSON.parse(payload.toString()) as { id: number, pushId: string, data: unknown }
  assert.deepEqual(message.data, { cmd: 'reboot' })
  assert.equal(message.pushId, push.body.pushId)
  assert.equal(message.id, 1)
})
