import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { bounded, eventually } from '../helpers/eventually.ts'
import { startTestCluster } from '../helpers/cluster.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startPlatformProcess } from '../helpers/process.ts'
import { connectRedis, redisUrl, uniquePrefix } from '../helpers/services.ts'
import { createRedisDeviceStore } from '../../src/stores/redis-device-store.ts'
import { createRedisPushJobStore } from '../../src/stores/redis-push-job-store.ts'
import { createRedisReceiptStore } from '../../src/stores/redis-receipt-store.ts'

// A list push is a job kept in Redis, not in the API process: an API process killed in the middle of one is
// replaced by another that resumes it, and every device ends with exactly one history entry for the push; the
// delivery orders of chunks committed but not ordered before the death are sent by the worker that resumes.

const ADMIN_KEY = `resume-admin-key-${randomUUID()}`

test('a 10,000-id job whose API process is SIGKILLed mid-job is resumed by another API process: every device gets it exactly once', { timeout: 300_000 }, async (t) => {
  const prefix = uniquePrefix()
  const redis = connectRedis(t)
  const store = createRedisDeviceStore({ redis, prefix })
  const env = { PUSHLINE_ROLE: 'api', PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: prefix, PUSHLINE_ADMIN_KEYS: ADMIN_KEY }
  const post = async (port: number, body: unknown): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/admin/push`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }

  // Kill the process as soon as the first chunk is in. On a busy machine the job may end before the kill lands:
  // then the attempt proves nothing, and the test tries again with new devices (as push-gap.test.ts does).
  let ids: string[] = []
  let pushId = ''
  let pushKey = ''
  let processed = 0
  for (let attempt = 0; attempt < 5; attempt++) {
    const tag = randomUUID().slice(0, 8)
    ids = Array.from({ length: 10_000 }, (_, i) => `r-${tag}-${i}`)
    for (let i = 0; i < ids.length; i += 500) {
      await Promise.all(ids.slice(i, i + 500).map((id) => store.create({ id, groups: [], metadata: {}, secretHash: 'unused', enabled: true, createdAt: 1, updatedAt: 1 })))
    }
    const first = await startPlatformProcess(t, env)
    const res = await post(first.httpPort, { deviceIds: ids, data: { once: true }, ttlSeconds: 600 })
    assert.equal(res.status, 202, JSON.stringify(res.body))
    pushId = res.body.pushId as string
    pushKey = `${prefix}push:${pushId}`
    assert.ok(await eventually(async () => { processed = Number(await redis.hget(pushKey, 'processed') ?? 0); return processed > 0 }, 30_000, 5), 'the job never started')
    first.child.kill('SIGKILL')
    await bounded('the killed API process to exit', first.exited)
    processed = Number(await redis.hget(pushKey, 'processed') ?? 0)
    if (processed < ids.length) break
    t.diagnostic(`attempt ${attempt + 1}: the job finished before the process was killed`)
  }
  assert.ok(processed < ids.length, 'the job finished before the kill in every attempt')
  t.diagnostic(`killed after ${processed} of ${ids.length} devices`)

  const second = await startPlatformProcess(t, env)
  // The dead process's lease (10 s) must lapse before the second one takes over.
  assert.ok(await eventually(async () => await redis.hget(pushKey, 'done') === '1', 60_000, 200), 'the job was not resumed to its end')
  const h = await redis.hgetall(pushKey)
  assert.deepEqual([h.processed, h.total, h['c:queued'], h['c:failed']], ['10000', '10000', '10000', '0'])

  // Exactly one history entry per device, id 1, for this push.
  const pipeline = redis.pipeline()
  for (const id of ids) pipeline.zrange(`${prefix}hist:${id}`, 0, -1)
  const entries = (await pipeline.exec() ?? []).map(([err, raw]) => { assert.equal(err, null); return raw as string[] })
  const wrong = ids.filter((_, i) => entries[i]?.length !== 1 || (JSON.parse(entries[i]?.[0] as string) as { id: number, pushId: string }).pushId !== pushId)
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} devices without exactly one entry`)
  assert.equal(await redis.zcard(`${prefix}push-jobs`), 0, 'the finished job is forgotten')
  second.child.kill('SIGTERM')
  await bounded('the second API process to exit after SIGTERM', second.exited)
})

test('a worker that died between a chunk\'s commit and its delivery orders: the worker that resumes the job sends them, so no online device is left queued', { timeout: 180_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 500 })
  const node = cluster.nodes[0] as { mqttUrl: string }
  const redis = connectRedis(t)
  const limits = { maxMessages: 100, maxAgeMs: 3600_000 }
  const jobs = createRedisPushJobStore({ redis, prefix: cluster.prefix, limits })
  const receipts = createRedisReceiptStore({ redis, prefix: cluster.prefix })
  const tag = randomUUID().slice(0, 8)
  const ids = Array.from({ length: 20 }, (_, i) => `o-${tag}-${i}`)
  const online = ids.filter((_, i) => i % 2 === 0)
  const got = new Map<string, unknown[]>()
  for (const id of ids) {
    const { token } = await cluster.api.provision(id)
    if (!online.includes(id)) continue
    const c = await connectDevice(t, node.mqttUrl, id, token)
    const messages: unknown[] = []
    c.on('message', (_topic, payload) => { messages.push(JSON.parse(payload.toString())) })
    await c.subscribeAsync(`devices/${id}/down`, { qos: 1 })
    got.set(id, messages)
  }
  assert.ok(await eventually(async () => (await cluster.stats()).online === online.length, 30_000), 'devices not online')

  // A "dead" worker: it claims the job, commits its only chunk and dies before sending the orders. The API's own
  // worker may claim a new job first (it polls every second): then that push runs normally and we try again.
  let pushId = ''
  for (let attempt = 0; attempt < 5 && pushId === ''; attempt++) {
    const candidate = `p-resend-${tag}-${attempt}`
    const createdAt = Date.now()
    const body = { data: { resent: true }, qos: 1 as const, expiresAt: createdAt + 60_000, traceId: 'c'.repeat(32) }
    await receipts.createPush({ pushId: candidate, target: { kind: 'devices', count: ids.length }, qos: 1, ttlSeconds: 60, createdAt, traceId: body.traceId }, ids.length)
    await jobs.create(candidate, ids, body)
    // A lease long enough that it cannot lapse before the commit below however busy the machine is.
    if (await jobs.claim('dead-worker', 10_000, Date.now()) !== candidate) continue
    const entry = { pushId: candidate, sentAt: Date.now(), expiresAt: body.expiresAt, qos: body.qos, data: body.data, traceId: body.traceId }
    assert.ok(await jobs.commit(candidate, 0, ids, [], entry) !== undefined)
    pushId = candidate
  }
  assert.notEqual(pushId, '', 'the API worker claimed every attempt first')

  // After the lease lapses the API process resumes the job: the online devices get their orders, the others stay queued.
  let last: unknown
  const ok = await eventually(async () => {
    const res = await cluster.api.api('GET', `/v1/admin/push/${pushId}`)
    last = res.body
    return res.body.progress.done === true && res.body.counts.delivered === online.length
  }, 90_000, 200)
  assert.ok(ok, `not resumed with its orders: ${JSON.stringify((last as { counts?: unknown })?.counts)}`)
  const status = last as { counts: Record<string, number>, devices: Array<{ deviceId: string, state: string }> }
  assert.deepEqual(status.counts, { queued: ids.length - online.length, sent: 0, delivered: online.length, acked: 0, expired: 0, failed: 0 })
  for (const d of status.devices) assert.equal(d.state, online.includes(d.deviceId) ? 'delivered' : 'queued', d.deviceId)
  // An attempt the API's worker claimed first ran as a normal push, and its downlink came too: only this push's count.
  for (const id of online) assert.deepEqual(got.get(id)?.map((m) => (m as { pushId: string }).pushId).filter((p) => p === pushId), [pushId], id)
  // The orders came from the worker that resumed the job, not from the dead one's commit.
  assert.ok(cluster.api.logs.some((l) => l.event === 'push_job_orders_resent' && l.pushId === pushId && l.online === online.length), 'the resuming worker sent the orders')
})
