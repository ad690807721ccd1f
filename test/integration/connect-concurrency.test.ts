import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt from 'mqtt'
import { hashToken } from '../../src/auth/device-token.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'
import { redisUrl } from '../helpers/services.ts'
import { startTcpRelay, type TcpRelay } from '../helpers/tcp-relay.ts'

// PUSHLINE_CONNECT_CONCURRENCY bounds the connects one node authenticates at once, PUSHLINE_CONNECT_QUEUE those
// waiting for a check, PUSHLINE_CONNECT_QUEUE_WAIT_MS how long each waits; one more, or one that waited that long,
// gets CONNACK 3. The token checks are held in flight by a relay in front of Redis that keeps the platform's commands
// until released (and without a command timeout they wait), so the counts do not depend on timing: a queued connect
// can only leave the queue by its wait bound or its client's close.

async function gatedPlatform (t: TestContext, env: Record<string, string>): Promise<{ p: TestPlatform, relay: TcpRelay }> {
  const redis = new URL(redisUrl())
  const relay = await startTcpRelay(t, { host: redis.hostname, port: Number(redis.port) })
  const p = await startTestPlatform(t, {
    clusterPrefix: uniquePrefix(),
    redisEnv: { PUSHLINE_REDIS_URL: `redis://127.0.0.1:${relay.port}` },
    env: { PUSHLINE_REDIS_COMMAND_TIMEOUT_MS: '0', ...env }
  })
  return { p, relay }
}

/** Whether the platform wrote a Redis command naming this token's key after `before` (an earlier relay.written()). */
function checkedSince (relay: TcpRelay, before: string[], token: string): boolean {
  const key = hashToken(token)
  return relay.written().some((bytes, i) => bytes.slice(before[i]?.length ?? 0).includes(key))
}

test('connects over the authentication bound wait in the queue; beyond the queue CONNACK 3 at once, and the held ones all connect', { timeout: 180_000 }, async (t) => {
  // A wait bound far beyond the test's own time: only the queue's length refuses here.
  const { p, relay } = await gatedPlatform(t, { PUSHLINE_CONNECT_CONCURRENCY: '2', PUSHLINE_CONNECT_QUEUE: '3', PUSHLINE_CONNECT_QUEUE_WAIT_MS: '600000' })
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

test('a connect that waited PUSHLINE_CONNECT_QUEUE_WAIT_MS gets CONNACK 3, counted as wait_expired, without a token check', { timeout: 180_000 }, async (t) => {
  // 1 ms: the connect ahead of it is held until released, so the queued one can only leave the queue by its bound.
  const { p, relay } = await gatedPlatform(t, { PUSHLINE_CONNECT_CONCURRENCY: '1', PUSHLINE_CONNECT_QUEUE: '4', PUSHLINE_CONNECT_QUEUE_WAIT_MS: '1' })
  const tokens = new Map<string, string>()
  for (const id of ['wait-0', 'wait-1']) tokens.set(id, (await p.provision(id)).token)
  const connect = async (id: string): Promise<unknown> => await connectDevice(t, p.mqttUrl, id, tokens.get(id) as string, { connectTimeout: 120_000 })

  relay.hold()
  const before = relay.written()
  const first = connect('wait-0')
  await waitUntil('the first connect being authenticated', async () => await p.metric('pushline_connects_authenticating') === 1, 60_000)
  const refused = await bounded('the answer to the connect behind it', connect('wait-1').then(() => undefined, (err: unknown) => err))
  assert.equal((refused as { code?: unknown } | undefined)?.code, 3, `CONNACK 3 expected, got ${String(refused)}`)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'wait_expired' }), 1)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'busy' }), 0)
  assert.equal(await p.metric('pushline_connects_queued'), 0)
  assert.equal(checkedSince(relay, before, tokens.get('wait-1') as string), false, 'no token check for the refused connect')

  relay.release()
  await bounded('the held connect', first)
  assert.equal(checkedSince(relay, before, tokens.get('wait-0') as string), true, 'the held connect\'s check is seen')
  await bounded('the refused device, once more, with the slot free', connect('wait-1'))
  assert.equal(await p.metric('pushline_connects_refused_total'), 1)
})

test('a connect whose client closes its connection while it waits in the queue leaves it without a token check', { timeout: 180_000 }, async (t) => {
  const { p, relay } = await gatedPlatform(t, { PUSHLINE_CONNECT_CONCURRENCY: '1', PUSHLINE_CONNECT_QUEUE: '4', PUSHLINE_CONNECT_QUEUE_WAIT_MS: '600000' })
  const tokens = new Map<string, string>()
  for (const id of ['gone-0', 'gone-1', 'gone-2']) tokens.set(id, (await p.provision(id)).token)
  const token = (id: string): string => tokens.get(id) as string

  relay.hold()
  const before = relay.written()
  const first = connectDevice(t, p.mqttUrl, 'gone-0', token('gone-0'), { connectTimeout: 120_000 })
  await waitUntil('the first connect being authenticated', async () => await p.metric('pushline_connects_authenticating') === 1, 60_000)
  // MQTT.js on its own, not settled by connectDevice: it is closed while its CONNECT waits.
  const leaving = mqtt.connect(p.mqttUrl, { clientId: 'gone-1', username: 'gone-1', password: token('gone-1'), reconnectPeriod: 0, connectTimeout: 120_000, protocolVersion: 4 })
  leaving.on('error', () => {})
  t.after(() => leaving.endAsync(true))
  await waitUntil('its connect waiting in the queue', async () => await p.metric('pushline_connects_queued') === 1, 60_000)
  const third = connectDevice(t, p.mqttUrl, 'gone-2', token('gone-2'), { connectTimeout: 120_000 })
  await waitUntil('a second one waiting behind it', async () => await p.metric('pushline_connects_queued') === 2, 60_000)

  await leaving.endAsync(true)
  await waitUntil('the closed one out of the queue', async () => await p.metric('pushline_connects_abandoned_total') === 1, 60_000)
  assert.equal(await p.metric('pushline_connects_queued'), 1)

  relay.release()
  await bounded('the two other connects', Promise.all([first, third]))
  assert.equal(checkedSince(relay, before, token('gone-2')), true, 'the check of the connect queued behind it is seen')
  assert.equal(checkedSince(relay, before, token('gone-1')), false, 'no token check for the closed one')
  assert.equal(await p.metric('pushline_connects_refused_total'), 0)
  assert.equal(await p.metric('pushline_connects_abandoned_total'), 1)
  assert.equal(await p.metric('pushline_connects_queued'), 0)
  assert.equal(await p.metric('pushline_connects_authenticating'), 0)
})
