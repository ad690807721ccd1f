import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import pino from 'pino'
import { loadConfig } from '../../src/config/load-config.ts'
import { startPlatform } from '../../src/main.ts'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { redisUrl } from '../helpers/services.ts'
import { startTcpRelay } from '../helpers/tcp-relay.ts'
import { ADMIN_KEY, startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'
import { makeCertificates, makeClientCa, type ClientCertificate, type TestCertificates } from '../helpers/tls.ts'

// Devices with X.509 client certificates on the TLS listeners (PUSHLINE_TLS_CLIENT_CA_FILE): certificates made in
// the test with `openssl ca`, devices connecting with MQTT.js over MQTT/TLS and WebSocket/TLS.

const tlsEnv = (certs: TestCertificates, extra: Record<string, string>): Record<string, string> => ({
  PUSHLINE_TLS_CERT_FILE: certs.certFile,
  PUSHLINE_TLS_KEY_FILE: certs.keyFile,
  PUSHLINE_MQTTS_PORT: '0',
  PUSHLINE_WSS_PORT: '0',
  ...extra
})

/** Connects with a certificate and no password (username = client id, as the MQTT contract has it). */
async function connectWithCert (t: TestContext, url: string, clientId: string, cert: ClientCertificate | undefined, certs: TestCertificates, extra: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, {
    clientId, username: clientId, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ca: certs.ca, ...(cert !== undefined && { cert: cert.cert, key: cert.key }), ...extra
  })
  t.after(() => client.endAsync(true))
  return client
}

/** The CONNACK code of a refused connect, and the message the node logged for it. */
async function refusal (t: TestContext, p: TestPlatform, url: string, clientId: string, cert: ClientCertificate, certs: TestCertificates): Promise<{ code: number | undefined, logged: string }> {
  const before = p.logs.filter((l) => l.event === 'connect_refused').length
  let code: number | undefined
  await assert.rejects(connectWithCert(t, url, clientId, cert, certs), (err: Error & { code?: number }) => { code = err.code; return true })
  assert.ok(await eventually(async () => p.logs.filter((l) => l.event === 'connect_refused').length > before, 5000), 'the refusal was logged')
  const entry = p.logs.filter((l) => l.event === 'connect_refused')[before] as Record<string, unknown>
  return { code, logged: `${String(entry.reason)}: ${String(entry.msg)}` }
}

test('certificate devices connect without a token over MQTT/TLS and WSS with the same ACL; every wrong certificate gets CONNACK 5 with its reason logged; token devices work beside them', { timeout: 120_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const clients = await makeClientCa(t)
  const stranger = await makeClientCa(t, 'Some other CA')
  const good = await clients.issue('good', { cn: 'cert-good' })
  const other = await clients.issue('other', { cn: 'cert-other' })
  const disabled = await clients.issue('disabled', { cn: 'cert-disabled' })
  const unregistered = await clients.issue('unregistered', { cn: 'cert-nobody' })
  const expired = await clients.issue('expired', { cn: 'cert-expired', startDate: '20200101000000Z', endDate: '20200102000000Z' })
  const inCrl = await clients.issue('in-crl', { cn: 'cert-crl' })
  await clients.revoke('in-crl')
  const foreign = await stranger.issue('foreign', { cn: 'cert-foreign' })
  // The other CA also serves as the server's intermediates (PUSHLINE_TLS_CA_FILE): they must not vouch for devices.
  const p = await startTestPlatform(t, {
    env: tlsEnv(certs, { PUSHLINE_TLS_CA_FILE: stranger.caFile, PUSHLINE_TLS_CLIENT_CA_FILE: clients.caFile, PUSHLINE_TLS_CLIENT_CRL_FILE: clients.crlFile })
  })
  for (const id of ['cert-good', 'cert-other', 'cert-disabled', 'cert-expired', 'cert-crl', 'cert-foreign']) await p.createDevice(id, ['fleet'])
  assert.equal((await p.api('POST', '/v1/admin/devices/cert-disabled/disable')).status, 200)
  const mqtts = `mqtts://127.0.0.1:${p.mqttsPort ?? 0}`
  const wss = `wss://127.0.0.1:${p.wssPort ?? 0}/mqtt`

  // The right certificate: in without a token, on both TLS listeners, with the device's own topics only.
  const device = await connectWithCert(t, mqtts, 'cert-good', good, certs)
  await device.publishAsync('devices/cert-good/telemetry', 'by-certificate', { qos: 1 })
  const granted = await new Promise<number[]>((resolve, reject) => {
    device.subscribe(['devices/cert-good/down', 'broadcast/groups/fleet', 'devices/cert-other/down'], { qos: 1 }, (err, g) => {
      // MQTT.js reports a partly refused subscription as an error that carries the SUBACK.
      const packet = (err as { packet?: { granted: number[] } } | null)?.packet
      if (packet !== undefined) return resolve(packet.granted)
      if (err != null) return reject(err)
      resolve((g ?? []).map((x) => x.qos))
    })
  })
  assert.deepEqual(granted, [1, 1, 128], 'the same ACL as a token device')
  await device.endAsync()
  const overWss = await connectWithCert(t, wss, 'cert-good', good, certs)
  await overWss.publishAsync('devices/cert-good/telemetry', 'by-certificate-wss', { qos: 1 })
  const payloads: string[] = []
  for await (const r of readSpool(join(p.dataDir, 'spool'))) payloads.push(r.payload.toString())
  assert.deepEqual(payloads, ['by-certificate', 'by-certificate-wss'])
  const listed = (await p.api('GET', '/v1/admin/devices?online=true')).body.devices as Array<{ id: string, transport: string }>
  assert.deepEqual(listed.map((d) => [d.id, d.transport]), [['cert-good', 'wss']])

  // Every wrong certificate: CONNACK 5, and the log says why.
  const cases: Array<[string, string, ClientCertificate, RegExp]> = [
    ['another device\'s certificate', 'cert-good', other, /is for device cert-other, not for client id cert-good/],
    ['a certificate of an unknown CA', 'cert-foreign', foreign, /not accepted: UNABLE_TO_(GET_ISSUER_CERT_LOCALLY|VERIFY_LEAF_SIGNATURE)/],
    ['an expired certificate', 'cert-expired', expired, /not accepted: CERT_HAS_EXPIRED/],
    ['a certificate in the CRL', 'cert-crl', inCrl, /not accepted: CERT_REVOKED/],
    ['a disabled device\'s certificate', 'cert-disabled', disabled, /device disabled/],
    ['an unregistered device\'s certificate', 'cert-nobody', unregistered, /no such device/]
  ]
  for (const [what, clientId, cert, why] of cases) {
    for (const url of [mqtts, wss]) {
      const { code, logged } = await refusal(t, p, url, clientId, cert, certs)
      assert.equal(code, 5, `${what} over ${url}`)
      assert.match(logged, /^bad_certificate: /, what)
      assert.match(logged, why, what)
    }
  }
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'bad_certificate' }), cases.length * 2)

  // Token devices on the same listeners: without a certificate, and with another device's certificate beside their token.
  const { token } = await p.provision('token-dev')
  for (const [url, cert] of [[mqtts, undefined], [wss, undefined], [mqtts, other]] as const) {
    const c = await connectWithCert(t, url, 'token-dev', cert, certs, { password: token })
    assert.equal(c.connected, true)
    await c.endAsync()
  }
  // A device sending neither token nor certificate is refused as before (no password: bad credentials).
  await assert.rejects(connectWithCert(t, mqtts, 'token-dev', undefined, certs), (err: Error & { code?: number }) => err.code === 4)
})

test('a revoke refuses the certificates issued until then, and a certificate issued after it works', { timeout: 60_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const clients = await makeClientCa(t)
  const first = await clients.issue('first', { cn: 'cert-rev' })
  const p = await startTestPlatform(t, { env: tlsEnv(certs, { PUSHLINE_TLS_CLIENT_CA_FILE: clients.caFile }) })
  await p.createDevice('cert-rev')
  const mqtts = `mqtts://127.0.0.1:${p.mqttsPort ?? 0}`
  const live = await connectWithCert(t, mqtts, 'cert-rev', first, certs)
  const closed = new Promise<void>((resolve) => live.once('close', () => resolve()))

  assert.equal((await p.api('POST', '/v1/admin/devices/cert-rev/revoke')).status, 200)
  const revokedBy = Date.now()
  await closed
  const { code, logged } = await refusal(t, p, mqtts, 'cert-rev', first, certs)
  assert.equal(code, 5)
  assert.match(logged, /device revoked after the certificate was issued/)

  // Certificate times have whole seconds: one issued in a later second than the revoke is newer for certain.
  assert.ok(await eventually(async () => Date.now() >= (Math.floor(revokedBy / 1000) + 1) * 1000, 5000, 20))
  const second = await clients.issue('second', { cn: 'cert-rev' })
  const again = await connectWithCert(t, mqtts, 'cert-rev', second, certs)
  assert.equal(again.connected, true)
})

test('PUSHLINE_TLS_CLIENT_ID_FIELD=san-dns: the device id is the one DNS subject alternative name, not the CN', { timeout: 60_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const clients = await makeClientCa(t)
  const bySan = await clients.issue('by-san', { cn: 'ignored-cn', dns: ['san-dev'] })
  const byCn = await clients.issue('by-cn', { cn: 'san-dev' })
  const twoNames = await clients.issue('two', { dns: ['san-dev', 'san-other'] })
  const p = await startTestPlatform(t, { env: tlsEnv(certs, { PUSHLINE_TLS_CLIENT_CA_FILE: clients.caFile, PUSHLINE_TLS_CLIENT_ID_FIELD: 'san-dns' }) })
  await p.createDevice('san-dev')
  await p.createDevice('ignored-cn')
  const mqtts = `mqtts://127.0.0.1:${p.mqttsPort ?? 0}`
  const c = await connectWithCert(t, mqtts, 'san-dev', bySan, certs)
  assert.equal(c.connected, true)
  await c.endAsync()
  const cn = await refusal(t, p, mqtts, 'san-dev', byCn, certs)
  assert.equal(cn.code, 5)
  assert.match(cn.logged, /must name one device id in its DNS subject alternative name, it names 0/)
  const two = await refusal(t, p, mqtts, 'san-dev', twoNames, certs)
  assert.equal(two.code, 5)
  assert.match(two.logged, /it names 2/)
  const notCn = await refusal(t, p, mqtts, 'ignored-cn', bySan, certs)
  assert.match(notCn.logged, /is for device san-dev, not for client id ignored-cn/)
})

test('an unreadable client CA file, one without a CA certificate, or a CRL that does not parse stops the start with IOT_ERR_TLS', { timeout: 60_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const clients = await makeClientCa(t)
  const leaf = await clients.issue('leaf', { cn: 'x' })
  const base = {
    PUSHLINE_HOST: '127.0.0.1',
    PUSHLINE_HTTP_PORT: '0',
    PUSHLINE_MQTT_PORT: '0',
    PUSHLINE_WS_PORT: '0',
    PUSHLINE_DATA_DIR: join(certs.dir, 'data'),
    PUSHLINE_ADMIN_KEYS: ADMIN_KEY,
    PUSHLINE_LOG_LEVEL: 'silent',
    ...tlsEnv(certs, {})
  }
  const logger = pino({ level: 'silent' })
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PUSHLINE_TLS_CLIENT_CA_FILE: join(certs.dir, 'missing.pem') }, /cannot read PUSHLINE_TLS_CLIENT_CA_FILE .*missing\.pem/],
    [{ PUSHLINE_TLS_CLIENT_CA_FILE: certs.keyFile }, /PUSHLINE_TLS_CLIENT_CA_FILE .* holds no PEM certificate/],
    [{ PUSHLINE_TLS_CLIENT_CA_FILE: leaf.certFile }, /PUSHLINE_TLS_CLIENT_CA_FILE .*is not a CA certificate/],
    [{ PUSHLINE_TLS_CLIENT_CA_FILE: clients.caFile, PUSHLINE_TLS_CLIENT_CRL_FILE: clients.caFile }, /PUSHLINE_TLS_CLIENT_CRL_FILE .* is not usable/]
  ]
  for (const [env, message] of cases) {
    await assert.rejects(startPlatform(loadConfig({ ...base, ...env }), logger),
      (err: Error & { code?: string }) => err.code === 'IOT_ERR_TLS' && message.test(err.message), JSON.stringify(env))
  }
})

test('with the connect bound full, a certificate that can never pass still gets CONNACK 5 bad_certificate, not 3 busy', { timeout: 120_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const clients = await makeClientCa(t)
  const stranger = await makeClientCa(t, 'Some other CA')
  const wrongId = await clients.issue('wrong-id', { cn: 'cert-someone-else' })
  const foreign = await stranger.issue('foreign', { cn: 'cert-foreign' })
  // One check at a time and no queue; the token check that takes the slot is held in flight by a relay in front of
  // Redis (no command timeout, so it waits), whatever the timing.
  const redis = new URL(redisUrl())
  const relay = await startTcpRelay(t, { host: redis.hostname, port: Number(redis.port) })
  const p = await startTestPlatform(t, {
    clusterPrefix: uniquePrefix(),
    redisEnv: { PUSHLINE_REDIS_URL: `redis://127.0.0.1:${relay.port}` },
    env: tlsEnv(certs, { PUSHLINE_TLS_CLIENT_CA_FILE: clients.caFile, PUSHLINE_CONNECT_CONCURRENCY: '1', PUSHLINE_CONNECT_QUEUE: '0', PUSHLINE_REDIS_COMMAND_TIMEOUT_MS: '0' })
  })
  const { token } = await p.provision('cert-gate-holder')
  await p.createDevice('cert-foreign', [])
  const mqtts = `mqtts://127.0.0.1:${p.mqttsPort ?? 0}`

  relay.hold()
  const holder = connectDevice(t, p.mqttUrl, 'cert-gate-holder', token, { connectTimeout: 60_000 })
  await waitUntil('the token check holding the only slot', async () => await p.metric('pushline_connects_authenticating') === 1, 60_000)
  // A token connect now is refused busy: the bound is full.
  const busy = await bounded('a token connect beyond the bound', connectDevice(t, p.mqttUrl, 'cert-gate-holder', token).then(() => undefined, (err: unknown) => err))
  assert.equal((busy as { code?: unknown } | undefined)?.code, 3)

  const unknownCa = await refusal(t, p, mqtts, 'cert-foreign', foreign, certs)
  assert.equal(unknownCa.code, 5)
  assert.match(unknownCa.logged, /^bad_certificate: client certificate not accepted: UNABLE_TO_/)
  const wrong = await refusal(t, p, mqtts, 'cert-gate-other', wrongId, certs)
  assert.equal(wrong.code, 5)
  assert.match(wrong.logged, /^bad_certificate: client certificate is for device cert-someone-else/)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'busy' }), 1, 'only the token connect was busy')
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'bad_certificate' }), 2)

  relay.release()
  await bounded('the held token connect', holder)
})
