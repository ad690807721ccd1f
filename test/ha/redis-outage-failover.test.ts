import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientNames, currentPrimary, forceFailover, haRedisEnv, killRedis, restartRedis, setSentinelDownAfter, timeUntil } from '../helpers/ha.ts'
import { connectDevice, rawConnect } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'

// Sentinel mode, one node: while the primary is dead and nothing is promoted yet, the node behaves as in a Redis
// outage; once the Sentinels promote the replica, every one of its Redis connections moves there by itself.
// The outage is held open by a long Sentinel down-after, and ended by SENTINEL FAILOVER: no timing involved.

const ROLES = ['main', 'membership', 'kicks', 'push', 'mq-pub', 'mq-sub', 'persistence', 'wait']

test('primary killed: CONNACK 3, API 503, not ready, no crash; after the failover every connection is on the new primary and the node serves again', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix(), redisEnv: haRedisEnv(), env: { PUSHLINE_HEARTBEAT_MS: '500' } })
  const nodeId = p.config.nodeId
  const expected = ROLES.map((r) => `pushline:${nodeId}:${r}`).sort()
  const ours = async (port: number): Promise<string[]> => (await clientNames(port)).filter((n) => n.startsWith(`pushline:${nodeId}:`)).sort()

  const before = await currentPrimary()
  // One factory for every connection: all of them, the libraries' included, found the primary through the Sentinels.
  assert.deepEqual(await ours(before.port), expected)

  const { token } = await p.provision('fo-dev')
  const { token: lateToken } = await p.provision('fo-late')
  const device = await connectDevice(t, p.mqttUrl, 'fo-dev', token)

  const downAfter = await setSentinelDownAfter(600_000)
  let failedOver = false
  t.after(async () => {
    await setSentinelDownAfter(downAfter)
    if (!failedOver) await forceFailover().catch(() => {})
    await timeUntil('a new primary', async () => (await currentPrimary()).server !== before.server, 60_000)
    await restartRedis(before.server)
  })
  killRedis(before.server)

  // The outage: held as long as the Sentinels do not fail over.
  await timeUntil('not ready', async () => (await p.api('GET', '/readyz', undefined, {})).status === 503, 30_000)
  const notReady = await p.api('GET', '/readyz', undefined, {})
  assert.notEqual(notReady.body.checks.redis, 'ok')
  const raw = await rawConnect(t, p.mqttPort as number)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'fo-late', keepalive: 30, username: 'fo-late', password: Buffer.from(lateToken) })
  assert.equal((await raw.next() as { returnCode: number }).returnCode, 3, 'server unavailable, not "bad credentials"')
  await raw.closed
  const tokenDuring = await p.api('POST', '/v1/devices/fo-late/token', { secret: 'x' }, {})
  assert.equal(tokenDuring.status, 503, JSON.stringify(tokenDuring.body))
  assert.equal(tokenDuring.body.error, 'IOT_ERR_UNAVAILABLE')
  const createDuring = await p.api('POST', '/v1/admin/devices', { id: 'fo-during' })
  assert.equal(createDuring.status, 503, JSON.stringify(createDuring.body))
  assert.equal(createDuring.body.error, 'IOT_ERR_UNAVAILABLE')
  // Uplinks go on: they are spooled, not stored in Redis.
  await device.publishAsync('devices/fo-dev/telemetry', 'during the outage', { qos: 1 })

  await forceFailover()
  failedOver = true
  await timeUntil('the replica promoted', async () => (await currentPrimary()).server !== before.server, 60_000)
  const after = await currentPrimary()
  const readyMs = await timeUntil('ready again', async () => (await p.api('GET', '/readyz', undefined, {})).status === 200, 60_000)
  // Each connection moved by itself: none was made again by hand, none was left behind.
  await timeUntil('every connection on the new primary', async () => JSON.stringify(await ours(after.port)) === JSON.stringify(expected), 30_000)
  t.diagnostic(`ready ${readyMs} ms after SENTINEL FAILOVER`)

  const created = await p.api('POST', '/v1/admin/devices', { id: 'fo-after' })
  assert.equal(created.status, 201, JSON.stringify(created.body))
  await connectDevice(t, p.mqttUrl, 'fo-late', lateToken)
  await device.publishAsync('devices/fo-dev/telemetry', 'after the failover', { qos: 1 })
  assert.equal(device.connected, true, 'the device connected before the failover is still connected')
})
