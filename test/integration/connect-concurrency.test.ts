import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { redisUrl } from '../helpers/services.ts'
import { startTcpRelay } from '../helpers/tcp-relay.ts'

// PUSHLINE_CONNECT_CONCURRENCY bounds the connects one node authenticates at once, PUSHLINE_CONNECT_QUEUE those
// waiting for a check; one more gets CONNACK 3 at once. The token checks are held in flight by a relay in front of
// Redis that keeps the platform's commands until released (and without a command timeout they wait), so the counts
// do not depend on timing.

test('connects over the authentication bound wait in the queue; beyond the queue CONNACK 3 at once, and the held ones all connect', { timeout: 180_000 }, async (t) => {
  const redis = new URL(redisUrl())
  const relay = await startTcpRelay(t, { host: redis.hostname, port: Number(redis.port) })
  const p = await startTestPlatform(t, {
    clusterPrefix: uniquePrefix(),
    redisEnv: { PUSHLINE_REDIS_URL: `redis://127.0.0.1:${relay.port}` },
    env: { PUSHLINE_CONNECT_CONCURRENCY: '2', PUSHLINE_CONNECT_QUEUE: '3', PUSHLINE_REDIS_COMMAND_TIMEOUT_MS: '0' }
  })
  const ids = Array.from({ length: 6 }, (_, i) => `gate-${i}`)
  const tokens = new Map<string, string>()
  for (const id of ids) tokens.set(id, (await p.provision(id)).token)
  const connect = async (id: string): Promise<unknown> => await connectDevice(t, p.mqttUrl, id, tokens.get(id) as string, { connectTimeout: 120_000 })

  // Released by hand below; the relay closes when the test ends in any case.
  relay.hold()
  const held = ids.slice(0, 5).map(async (id) => await connect(id))
  await waitUntil('all five connects being authenticated or queued', async () =>
    await p.metric('pushline_connects_authenticating') + await p.metric('pushline_connects_queued') === 5, 60_000)
  assert.equal(await p.metric('pushline_connects_authenticating'), 2, 'two checks in flight')
  assert.equal(await p.metric('pushline_connects_queued'), 3, 'three waiting')

  const refused = await bounded('the answer to a connect beyond the queue', connect('gate-5').then(() => undefined, (err: unknown) => err))
  assert.equal((refused as { code?: unknown } | undefined)?.code, 3, `CONNACK 3 expected, got ${String(refused)}`)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'busy' }), 1)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'server_unavailable' }), 0)

  relay.release()
  await bounded('the held connects', Promise.all(held))
  assert.equal(await p.metric('pushline_connects_authenticating'), 0)
  assert.equal(await p.metric('pushline_connects_queued'), 0)
  // The refused device lost nothing: its token still works.
  await bounded('the refused device, once more', connect('gate-5'))
  assert.equal(await p.metric('pushline_connects_refused_total'), 1)
})
