import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { currentPrimary, freezeRedis, haRedisEnv, timeUntil } from '../helpers/ha.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'

// A 201 (device created) and a 202 (push accepted) go out only once the Redis replica has the write (WAIT): a
// failover right after the answer cannot take them back. A frozen replica (SIGSTOP) stays connected to the primary
// but confirms nothing, which holds the answer until it thaws.

test('a device creation and a push are answered only after the replica has them; a replica that never answers delays them by the timeout, counted', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const p = await startTestPlatform(t, { clusterPrefix: prefix, redisEnv: haRedisEnv(), env: { PUSHLINE_REDIS_WAIT_TIMEOUT_MS: '60000' } })
  const { port } = await currentPrimary()
  const replica = (await currentPrimary()).server === 1 ? 2 : 1
  const primary = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 2 })
  t.after(() => primary.disconnect())

  // Replica healthy: confirmed at once.
  assert.equal((await p.api('POST', '/v1/admin/devices', { id: 'w-1' })).status, 201)
  assert.equal(await p.metric('pushline_redis_wait_timeouts_total'), 0)
  assert.ok(await p.metric('pushline_redis_wait_seconds_count') >= 1, 'the creation waited for the replica')

  freezeRedis(replica, true)
  t.after(() => { freezeRedis(replica, false) })
  let answered = false
  const creating = p.api('POST', '/v1/admin/devices', { id: 'w-2' }).then((r) => { answered = true; return r })
  // The device is written on the primary ...
  await timeUntil('the device on the primary', async () => await primary.exists(`${prefix}device:w-2`) === 1, 30_000)
  // ... and a request sent after it is answered, while the creation still waits for the replica.
  assert.equal((await p.api('GET', '/v1/admin/devices/w-1')).status, 200)
  assert.equal(answered, false, '201 went out before the replica had the device')
  freezeRedis(replica, false)
  const created = await creating
  assert.equal(created.status, 201, JSON.stringify(created.body))

  let pushAnswered = false
  freezeRedis(replica, true)
  const pushing = p.api('POST', '/v1/admin/push', { deviceId: 'w-1', data: { x: 1 } }).then((r) => { pushAnswered = true; return r })
  await timeUntil('the push on the primary', async () => (await primary.keys(`${prefix}push:p-*`)).length > 0, 30_000)
  assert.equal((await p.api('GET', '/v1/admin/devices/w-1')).status, 200)
  assert.equal(pushAnswered, false, '202 went out before the replica had the push')
  freezeRedis(replica, false)
  assert.equal((await pushing).status, 202)

  // A revocation too: undone by a failover, it would bring a stolen token back.
  const issued = await p.api('POST', '/v1/devices/w-2/token', { secret: created.body.secret }, {})
  assert.equal(issued.status, 200, JSON.stringify(issued.body))
  freezeRedis(replica, true)
  let revokeAnswered = false
  const revoking = p.api('POST', '/v1/admin/devices/w-2/revoke').then((r) => { revokeAnswered = true; return r })
  await timeUntil('the tokens gone on the primary', async () => await primary.exists(`${prefix}device-tokens:w-2`) === 0, 30_000)
  assert.equal((await p.api('GET', '/v1/admin/devices/w-1')).status, 200)
  assert.equal(revokeAnswered, false, 'the revocation was answered before the replica had it')
  freezeRedis(replica, false)
  assert.ok((await revoking).status < 300)
  assert.equal(await p.metric('pushline_redis_wait_timeouts_total'), 0)
})

test('the wait is bounded: with the replica frozen past PUSHLINE_REDIS_WAIT_TIMEOUT_MS the answer goes out anyway and the timeout is counted', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix(), redisEnv: haRedisEnv(), env: { PUSHLINE_REDIS_WAIT_TIMEOUT_MS: '200' } })
  const replica = (await currentPrimary()).server === 1 ? 2 : 1
  freezeRedis(replica, true)
  t.after(() => { freezeRedis(replica, false) })
  const created = await p.api('POST', '/v1/admin/devices', { id: 'w-bounded' })
  freezeRedis(replica, false)
  assert.equal(created.status, 201, JSON.stringify(created.body))
  assert.equal(await p.metric('pushline_redis_wait_timeouts_total'), 1)
  assert.ok(p.logs.some((l) => l.event === 'redis_wait_timeout'), 'the timeout is logged')
})

test('PUSHLINE_REDIS_WAIT_REPLICAS=0 never waits', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix(), redisEnv: haRedisEnv(), env: { PUSHLINE_REDIS_WAIT_REPLICAS: '0' } })
  assert.equal((await p.api('POST', '/v1/admin/devices', { id: 'w-none' })).status, 201)
  assert.equal(await p.metric('pushline_redis_wait_seconds_count'), 0)
})
