import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bounded, eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY, startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { connectRedis } from '../helpers/services.ts'
import { hashSecret, legacyScryptHash } from '../../src/auth/secret-hash.ts'

test('admin routes answer 401 without a key and 403 with a wrong one', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const none = await p.api('GET', '/v1/admin/devices', undefined, {})
  assert.equal(none.status, 401)
  assert.equal(none.body.error, 'IOT_ERR_UNAUTHORIZED')
  const wrong = await p.api('GET', '/v1/admin/devices', undefined, { authorization: `Bearer ${ADMIN_KEY}x` })
  assert.equal(wrong.status, 403)
  assert.equal(wrong.body.error, 'IOT_ERR_FORBIDDEN')
  const noAuthWrite = await p.api('POST', '/v1/admin/devices', { id: 'sneaky' }, {})
  assert.equal(noAuthWrite.status, 401)
  assert.equal((await p.api('GET', '/v1/admin/devices/sneaky')).status, 404, 'nothing was created')
})

test('bad device input gets the right status and a stable code, and writes nothing', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const cases: Array<[unknown, number, string]> = [
    ['{"id": "x",', 400, 'IOT_ERR_INVALID_JSON'],
    [{}, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 42 }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: '' }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 'a'.repeat(65) }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 'has space' }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 'ok-1', groups: 'g1' }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 'ok-2', groups: ['bad group'] }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 'ok-3', extra: true }, 400, 'IOT_ERR_VALIDATION'],
    [{ id: 'ok-4', metadata: { blob: 'x'.repeat(2 * 1024 * 1024) } }, 413, 'IOT_ERR_PAYLOAD_TOO_LARGE']
  ]
  for (const [body, status, code] of cases) {
    const res = await p.api('POST', '/v1/admin/devices', body)
    assert.equal(res.status, status, `${JSON.stringify(body).slice(0, 40)} → ${JSON.stringify(res.body)}`)
    assert.equal(res.body.error, code)
    assert.equal(typeof res.body.message, 'string')
  }
  assert.deepEqual((await p.api('GET', '/v1/admin/devices')).body.devices, [])

  assert.equal((await p.api('POST', '/v1/admin/devices', { id: 'dup' })).status, 201)
  const dup = await p.api('POST', '/v1/admin/devices', { id: 'dup', groups: ['other'] })
  assert.equal(dup.status, 409)
  assert.equal(dup.body.error, 'IOT_ERR_DEVICE_EXISTS')
  assert.deepEqual((await p.api('GET', '/v1/admin/devices/dup')).body.groups, [], 'the first device is untouched')

  const unknown = await p.api('GET', '/v1/admin/devices/ghost')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.error, 'IOT_ERR_DEVICE_NOT_FOUND')
  assert.equal((await p.api('DELETE', '/v1/admin/devices/ghost')).status, 404)
  assert.equal((await p.api('POST', '/v1/admin/devices/ghost/revoke')).status, 404)
  assert.equal((await p.api('GET', '/v1/nowhere')).body.error, 'IOT_ERR_NOT_FOUND')
})

test('devices list in id order, page by page, and filter by group; the secret hash never leaves the server', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  for (const id of ['c', 'a', 'e', 'b', 'd']) await p.createDevice(id, id < 'c' ? ['low'] : [])
  const first = await p.api('GET', '/v1/admin/devices?limit=2')
  assert.deepEqual(first.body.devices.map((d: { id: string }) => d.id), ['a', 'b'])
  const second = await p.api('GET', `/v1/admin/devices?limit=2&after=${first.body.next as string}`)
  assert.deepEqual(second.body.devices.map((d: { id: string }) => d.id), ['c', 'd'])
  const last = await p.api('GET', `/v1/admin/devices?limit=2&after=${second.body.next as string}`)
  assert.deepEqual(last.body.devices.map((d: { id: string }) => d.id), ['e'])
  assert.equal(last.body.next, undefined)
  const low = await p.api('GET', '/v1/admin/devices?group=low')
  assert.deepEqual(low.body.devices.map((d: { id: string }) => d.id), ['a', 'b'])
  const one = await p.api('GET', '/v1/admin/devices/a')
  assert.deepEqual(Object.keys(one.body).sort(), ['createdAt', 'enabled', 'groups', 'id', 'metadata', 'updatedAt'])
})

test('token issue: the right secret gets a token, a wrong secret or unknown device gets 401, and a refresh retires the old token', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const secret = await p.createDevice('tok-dev')
  const wrong = await p.api('POST', '/v1/devices/tok-dev/token', { secret: secret + 'x' }, {})
  assert.equal(wrong.status, 401)
  assert.equal(wrong.body.error, 'IOT_ERR_BAD_CREDENTIALS')
  assert.equal((await p.api('POST', '/v1/devices/nobody/token', { secret }, {})).status, 401)
  assert.equal((await p.api('POST', '/v1/devices/tok-dev/token', { secret, token: 'x' }, {})).status, 400)
  assert.equal((await p.api('POST', '/v1/devices/tok-dev/token', {}, {})).status, 400)

  const first = await p.token('tok-dev', secret)
  assert.ok(first.length >= 43, 'at least 256 bits')
  const refreshed = await p.api('POST', '/v1/devices/tok-dev/token', { token: first }, {})
  assert.equal(refreshed.status, 200)
  assert.notEqual(refreshed.body.token, first)
  assert.equal((await p.api('POST', '/v1/devices/tok-dev/token', { token: first }, {})).status, 401, 'the old token cannot refresh again')
  await assert.rejects(connectDevice(t, p.mqttUrl, 'tok-dev', first), /Bad username or password/i)
  await connectDevice(t, p.mqttUrl, 'tok-dev', refreshed.body.token)
  assert.ok(!p.logText().includes(secret) && !p.logText().includes(first), 'secrets and tokens are not logged')
})

test('an expired token no longer connects', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_TOKEN_TTL_SECONDS: '1' } })
  const { token } = await p.provision('short-lived')
  // Polled: how long after its expiry a busy machine gets to try it is no part of the check.
  const refused = async (): Promise<boolean> => await connectDevice(t, p.mqttUrl, 'short-lived', token).then(() => false, (err: Error) => /Bad username or password/i.test(err.message))
  assert.ok(await eventually(refused, 30_000, 250), 'the expired token is refused')
})

test('revoking a device ends its live connection and its token never connects again', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('rev-dev')
  const client = await connectDevice(t, p.mqttUrl, 'rev-dev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  const res = await p.api('POST', '/v1/admin/devices/rev-dev/revoke')
  assert.equal(res.status, 200)
  assert.equal(res.body.revokedTokens, 1)
  await bounded('the connection to close', closed)
  await assert.rejects(connectDevice(t, p.mqttUrl, 'rev-dev', token), /Bad username or password/i)
})

test('a disabled device is disconnected and gets no token until enabled again', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { secret, token } = await p.provision('dis-dev')
  const client = await connectDevice(t, p.mqttUrl, 'dis-dev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  assert.equal((await p.api('POST', '/v1/admin/devices/dis-dev/disable')).body.enabled, false)
  await bounded('the connection to close', closed)
  const refused = await p.api('POST', '/v1/devices/dis-dev/token', { secret }, {})
  assert.equal(refused.status, 403)
  assert.equal(refused.body.error, 'IOT_ERR_DEVICE_DISABLED')
  await assert.rejects(connectDevice(t, p.mqttUrl, 'dis-dev', token), /Bad username or password/i)
  assert.equal((await p.api('POST', '/v1/admin/devices/dis-dev/enable')).body.enabled, true)
  await connectDevice(t, p.mqttUrl, 'dis-dev', await p.token('dis-dev', secret))
})

test('a deleted device is disconnected and its id can no longer get a token', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { secret, token } = await p.provision('del-dev')
  const client = await connectDevice(t, p.mqttUrl, 'del-dev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  assert.equal((await p.api('DELETE', '/v1/admin/devices/del-dev')).status, 204)
  await bounded('the connection to close', closed)
  assert.equal((await p.api('POST', '/v1/devices/del-dev/token', { secret }, {})).status, 401)
})

test('a rotated secret replaces the old one for new tokens', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const old = await p.createDevice('rot-dev')
  const rotated = await p.api('POST', '/v1/admin/devices/rot-dev/secret')
  assert.equal(rotated.status, 200)
  assert.notEqual(rotated.body.secret, old)
  assert.equal((await p.api('POST', '/v1/devices/rot-dev/token', { secret: old }, {})).status, 401)
  assert.equal((await p.api('POST', '/v1/devices/rot-dev/token', { secret: rotated.body.secret }, {})).status, 200)
})

test('self-registration is off without a provisioning key and needs the right key when on', { timeout: 120_000 }, async (t) => {
  const off = await startTestPlatform(t)
  const refused = await off.api('POST', '/v1/devices', { id: 'self-1' }, { 'x-provisioning-key': 'whatever-key-1234567' })
  assert.equal(refused.status, 403)
  assert.equal(refused.body.error, 'IOT_ERR_SELF_REGISTRATION_OFF')

  const key = 'fleet-provisioning-key-42'
  const on = await startTestPlatform(t, { env: { PUSHLINE_PROVISIONING_KEY: key } })
  assert.equal((await on.api('POST', '/v1/devices', { id: 'self-1' }, {})).status, 401)
  assert.equal((await on.api('POST', '/v1/devices', { id: 'self-1' }, { 'x-provisioning-key': key + 'x' })).status, 403)
  const created = await on.api('POST', '/v1/devices', { id: 'self-1', groups: ['field'] }, { 'x-provisioning-key': key })
  assert.equal(created.status, 201)
  assert.deepEqual(created.body.groups, ['field'])
  const token = await on.token('self-1', created.body.secret)
  await connectDevice(t, on.mqttUrl, 'self-1', token)
  assert.equal((await on.api('POST', '/v1/devices', { id: 'self-1' }, { 'x-provisioning-key': key })).status, 409)
})

test('health, readiness, metrics and the OpenAPI document are served', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  assert.equal((await p.api('GET', '/healthz', undefined, {})).body.status, 'ok')
  const ready = await p.api('GET', '/readyz', undefined, {})
  assert.equal(ready.status, 200)
  assert.equal(ready.body.ready, true)
  const metrics = await fetch(`${p.httpUrl}/metrics`)
  assert.match(await metrics.text(), /pushline_connects_total/)
  const doc = await p.api('GET', '/docs/json', undefined, {})
  assert.equal(doc.status, 200)
  assert.ok(doc.body.paths['/v1/admin/devices'] !== undefined)
  assert.ok(doc.body.paths['/v1/devices/{id}/token'] !== undefined)
})

test('repeated wrong secrets lock the device\'s token endpoint for the lockout time, even for the right secret', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_SECRET_MAX_FAILURES: '3', PUSHLINE_SECRET_LOCKOUT_SECONDS: '2' } })
  const secret = await p.createDevice('lock-dev')
  await p.createDevice('other-dev')
  for (let i = 0; i < 3; i++) assert.equal((await p.api('POST', '/v1/devices/lock-dev/token', { secret: 'wrong' }, {})).status, 401)
  const locked = await fetch(`${p.httpUrl}/v1/devices/lock-dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret }) })
  assert.equal(locked.status, 429)
  assert.equal(((await locked.json()) as { error: string }).error, 'IOT_ERR_LOCKED')
  assert.ok(Number(locked.headers.get('retry-after')) >= 1)
  assert.equal((await p.api('POST', '/v1/devices/other-dev/token', { secret: 'wrong' }, {})).status, 401, 'other devices are not locked')

  assert.ok(await eventually(async () => (await p.api('POST', '/v1/devices/lock-dev/token', { secret }, {})).status === 200, 30_000, 250), 'unlocked after the lockout')
})

test('a right secret resets the failure count', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_SECRET_MAX_FAILURES: '2' } })
  const secret = await p.createDevice('reset-dev')
  for (let round = 0; round < 3; round++) {
    assert.equal((await p.api('POST', '/v1/devices/reset-dev/token', { secret: 'wrong' }, {})).status, 401)
    assert.equal((await p.api('POST', '/v1/devices/reset-dev/token', { secret }, {})).status, 200)
  }
})

test('token requests are rate-limited per device and per source address with 429 and Retry-After', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE: '3', PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '6', PUSHLINE_PROVISIONING_KEY: 'fleet-provisioning-key-42' } })
  const secret = await p.createDevice('rate-dev')
  const secretB = await p.createDevice('rate-dev-b')
  for (let i = 0; i < 3; i++) assert.equal((await p.api('POST', '/v1/devices/rate-dev/token', { secret }, {})).status, 200)
  const limited = await fetch(`${p.httpUrl}/v1/devices/rate-dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret }) })
  assert.equal(limited.status, 429)
  assert.equal(((await limited.json()) as { error: string }).error, 'IOT_ERR_RATE_LIMITED')
  assert.ok(Number(limited.headers.get('retry-after')) > 0)
  // The address has made 4 requests: 2 more pass, then registration and tokens for any device are refused.
  assert.equal((await p.api('POST', '/v1/devices/rate-dev-b/token', { secret: secretB }, {})).status, 200)
  assert.equal((await p.api('POST', '/v1/devices/rate-dev-b/token', { secret: secretB }, {})).status, 200)
  assert.equal((await p.api('POST', '/v1/devices/rate-dev-b/token', { secret: secretB }, {})).status, 429)
  assert.equal((await p.api('POST', '/v1/devices', { id: 'self-x' }, { 'x-provisioning-key': 'fleet-provisioning-key-42' })).status, 429)
})

test('the lock holds across API processes that share Redis', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_SECRET_MAX_FAILURES: '2' } })
  const b = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_SECRET_MAX_FAILURES: '2' } })
  const secret = await a.createDevice('shared-lock')
  assert.equal((await a.api('POST', '/v1/devices/shared-lock/token', { secret: 'wrong' }, {})).status, 401)
  assert.equal((await b.api('POST', '/v1/devices/shared-lock/token', { secret: 'wrong' }, {})).status, 401)
  assert.equal((await a.api('POST', '/v1/devices/shared-lock/token', { secret }, {})).status, 429)
})

test('a secret stored as scrypt by an older release gets a token over HTTP and becomes a digest; a wrong one counts towards the lock', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const p = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_SECRET_MAX_FAILURES: '2' } })
  const redis = connectRedis(t)
  const secret = await p.createDevice('scrypt-dev')
  const key = `${prefix}device:scrypt-dev`
  const record = JSON.parse(await redis.get(key) as string) as { secretHash: string }
  await redis.set(key, JSON.stringify({ ...record, secretHash: await legacyScryptHash(secret, 10) }))
  assert.equal((await p.api('POST', '/v1/devices/scrypt-dev/token', { secret }, {})).status, 200)
  assert.equal((JSON.parse(await redis.get(key) as string) as { secretHash: string }).secretHash, hashSecret(secret))

  await redis.set(key, JSON.stringify({ ...record, secretHash: await legacyScryptHash(secret, 10) }))
  assert.equal((await p.api('POST', '/v1/devices/scrypt-dev/token', { secret: 'wrong' }, {})).status, 401)
  assert.equal((await p.api('POST', '/v1/devices/scrypt-dev/token', { secret: 'wrong' }, {})).status, 401)
  const locked = await p.api('POST', '/v1/devices/scrypt-dev/token', { secret }, {})
  assert.equal(locked.status, 429)
  assert.match((await redis.get(key)) as string, /scrypt\$/, 'a refused request upgrades nothing')
})
