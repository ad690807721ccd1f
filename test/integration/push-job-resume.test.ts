import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { eventually } from '../helpers/cluster.ts'
import { startPlatformProcess } from '../helpers/process.ts'
import { connectRedis, redisUrl, uniquePrefix } from '../helpers/services.ts'
import { createRedisDeviceStore } from '../../src/stores/redis-device-store.ts'

// A list push is a job kept in Redis, not in the API process: an API process killed in the middle of one is
// replaced by another that resumes it, and every device ends with exactly one history entry for the push.

const ADMIN_KEY = `resume-admin-key-${randomUUID()}`

test('a 10,000-id job whose API process is SIGKILLed mid-job is resumed by another API process: every device gets it exactly once', async (t) => {
  const prefix = uniquePrefix()
  const redis = connectRedis(t)
  const store = createRedisDeviceStore({ redis, prefix })
  const tag = randomUUID().slice(0, 8)
  const ids = Array.from({ length: 10_000 }, (_, i) => `r-${tag}-${i}`)
  for (let i = 0; i < ids.length; i += 500) {
    await Promise.all(ids.slice(i, i + 500).map((id) => store.create({ id, groups: [], metadata: {}, secretHash: 'unused', enabled: true, createdAt: 1, updatedAt: 1 })))
  }
  const env = { PUSHLINE_ROLE: 'api', PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: prefix, PUSHLINE_ADMIN_KEYS: ADMIN_KEY }
  const post = async (port: number, body: unknown): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/admin/push`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }

  const first = await startPlatformProcess(t, env)
  const res = await post(first.httpPort, { deviceIds: ids, data: { once: true }, ttlSeconds: 600 })
  assert.equal(res.status, 202, JSON.stringify(res.body))
  const pushId = res.body.pushId as string
  const pushKey = `${prefix}push:${pushId}`

  // Kill it as soon as the first chunk is in, well before the last.
  let processed = 0
  assert.ok(await eventually(async () => { processed = Number(await redis.hget(pushKey, 'processed') ?? 0); return processed > 0 }, 30_000, 5), 'the job never started')
  first.child.kill('SIGKILL')
  await first.exited
  processed = Number(await redis.hget(pushKey, 'processed') ?? 0)
  assert.ok(processed < ids.length, `the job finished (${processed}) before the process was killed`)
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
  await second.exited
})
