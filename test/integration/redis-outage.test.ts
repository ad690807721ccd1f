import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectDevice, rawConnect } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { services } from '../helpers/services.ts'

test('a Redis outage does not crash a node: connected devices keep publishing, new connects get CONNACK 3, /readyz says 503, and it recovers by itself', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix() })
  const { token } = await p.provision('out-dev')
  const { token: laterToken } = await p.provision('out-late')
  const client = await connectDevice(t, p.mqttUrl, 'out-dev', token)
  // Whatever happens, Redis is back for the tests after this one.
  t.after(() => services('redis-start'))

  await services('redis-stop')
  await client.publishAsync('devices/out-dev/telemetry', 'during outage', { qos: 1 })

  const raw = await rawConnect(t, p.mqttPort as number)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'out-late', keepalive: 30, username: 'out-late', password: Buffer.from(laterToken) })
  const connack = await bounded('the CONNACK while Redis is down', raw.next())
  assert.equal((connack as { returnCode: number }).returnCode, 3, 'server unavailable, not "bad credentials"')
  await bounded('the refused connection to close', raw.closed)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'server_unavailable' }), 1)

  const notReady = await p.api('GET', '/readyz', undefined, {})
  assert.equal(notReady.status, 503)
  assert.notEqual(notReady.body.checks.redis, 'ok')
  const tokenDuring = await p.api('POST', '/v1/devices/out-late/token', { secret: 'x' }, {})
  assert.equal(tokenDuring.status, 503)
  assert.equal(tokenDuring.body.error, 'IOT_ERR_UNAVAILABLE')

  await services('redis-start')
  await waitUntil('/readyz to answer 200 again after Redis came back', async () => (await p.api('GET', '/readyz', undefined, {})).status === 200, 60_000, 200)
  // This test Redis keeps no data across a restart, so the device is provisioned again.
  const { token: again } = await p.provision('out-again')
  const c2 = await connectDevice(t, p.mqttUrl, 'out-again', again)
  await c2.publishAsync('devices/out-again/telemetry', 'after outage', { qos: 1 })
  assert.equal(client.connected, true, 'the device connected before the outage is still connected')
})

test('a node closes within a few seconds even while Redis is down', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix() })
  const { token } = await p.provision('close-dev')
  await connectDevice(t, p.mqttUrl, 'close-dev', token)
  t.after(() => services('redis-start'))
  await services('redis-stop')
  // Each part's close is bounded in src/main.ts, so a Redis that never answers cannot hold the stop; the bound here
  // only ends a test whose close would hang.
  const started = Date.now()
  await bounded('the node to close while Redis is down', p.close(), 90_000)
  t.diagnostic(`closed in ${Date.now() - started} ms`)
})
