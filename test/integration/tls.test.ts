import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import mqtt from 'mqtt'
import pino from 'pino'
import { loadConfig } from '../../src/config/load-config.ts'
import { startPlatform } from '../../src/main.ts'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { bounded } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY, startTestPlatform } from '../helpers/platform.ts'
import { makeCertificates, makeChain } from '../helpers/tls.ts'

const tlsEnv = (certs: { certFile: string, keyFile: string }): Record<string, string> => ({
  PUSHLINE_TLS_CERT_FILE: certs.certFile,
  PUSHLINE_TLS_KEY_FILE: certs.keyFile,
  PUSHLINE_MQTTS_PORT: '0',
  PUSHLINE_WSS_PORT: '0'
})

test('with a certificate, devices connect over MQTT/TLS and WebSocket/TLS, and the token names both addresses', { timeout: 120_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const p = await startTestPlatform(t, { env: tlsEnv(certs) })
  assert.ok(p.mqttsPort !== undefined && p.mqttsPort > 0)
  assert.ok(p.wssPort !== undefined && p.wssPort > 0)

  const secret = await p.createDevice('tls-dev')
  const res = await p.api('POST', '/v1/devices/tls-dev/token', { secret }, {})
  assert.equal(res.status, 200)
  assert.equal(res.body.broker.mqtts, `mqtts://127.0.0.1:${p.mqttsPort}`)
  assert.equal(res.body.broker.wss, `wss://127.0.0.1:${p.wssPort}/mqtt`)
  assert.equal(res.body.broker.mqtt, p.mqttUrl, 'the plain addresses stay')
  assert.equal(res.body.broker.ws, p.wsUrl)
  const token = res.body.token as string

  const overTls = await connectDevice(t, res.body.broker.mqtts, 'tls-dev', token, { ca: certs.ca })
  await overTls.publishAsync('devices/tls-dev/telemetry', 'over-mqtts', { qos: 1 })
  await overTls.endAsync()
  const overWss = await connectDevice(t, res.body.broker.wss, 'tls-dev', token, { ca: certs.ca })
  await overWss.publishAsync('devices/tls-dev/telemetry', 'over-wss', { qos: 1 })

  const payloads: string[] = []
  for await (const r of readSpool(join(p.dataDir, 'spool'))) payloads.push(r.payload.toString())
  assert.deepEqual(payloads, ['over-mqtts', 'over-wss'])
})

test('a client that does not trust the certificate is refused on both TLS listeners, and the node keeps serving', { timeout: 120_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const p = await startTestPlatform(t, { env: tlsEnv(certs) })
  const { token } = await p.provision('tls-untrusting')
  for (const url of [`mqtts://127.0.0.1:${p.mqttsPort ?? 0}`, `wss://127.0.0.1:${p.wssPort ?? 0}/mqtt`]) {
    await assert.rejects(
      mqtt.connectAsync(url, { clientId: 'tls-untrusting', username: 'tls-untrusting', password: token, reconnectPeriod: 0, connectTimeout: 5000 }),
      (err: Error) => /self[- ]signed|unable to (verify|get local issuer)|certificate/i.test(err.message),
      url
    )
  }
  // The refusals leave the listener serving clients that trust the certificate.
  const trusting = await connectDevice(t, `mqtts://127.0.0.1:${p.mqttsPort ?? 0}`, 'tls-untrusting', token, { ca: certs.ca })
  assert.equal(trusting.connected, true)
})

test('without a certificate only the plain listeners run and the token response has no TLS addresses', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  assert.equal(p.mqttsPort, undefined)
  assert.equal(p.wssPort, undefined)
  const secret = await p.createDevice('plain-dev')
  const res = await p.api('POST', '/v1/devices/plain-dev/token', { secret }, {})
  assert.equal(res.status, 200)
  assert.deepEqual(Object.keys(res.body.broker).sort(), ['mqtt', 'nodeId', 'ws'])
})

test('an unreadable certificate or a key that does not match it stops the start with IOT_ERR_TLS naming the problem', { timeout: 120_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const base = {
    PUSHLINE_HOST: '127.0.0.1',
    PUSHLINE_HTTP_PORT: '0',
    PUSHLINE_MQTT_PORT: '0',
    PUSHLINE_WS_PORT: '0',
    PUSHLINE_MQTTS_PORT: '0',
    PUSHLINE_WSS_PORT: '0',
    PUSHLINE_DATA_DIR: join(certs.dir, 'data'),
    PUSHLINE_ADMIN_KEYS: ADMIN_KEY,
    PUSHLINE_LOG_LEVEL: 'silent'
  }
  const logger = pino({ level: 'silent' })
  await assert.rejects(startPlatform(loadConfig({ ...base, PUSHLINE_TLS_CERT_FILE: join(certs.dir, 'missing.pem'), PUSHLINE_TLS_KEY_FILE: certs.keyFile }), logger),
    (err: Error & { code?: string }) => err.code === 'IOT_ERR_TLS' && /PUSHLINE_TLS_CERT_FILE/.test(err.message) && /missing\.pem/.test(err.message))
  await assert.rejects(startPlatform(loadConfig({ ...base, PUSHLINE_TLS_CERT_FILE: certs.certFile, PUSHLINE_TLS_KEY_FILE: certs.otherKeyFile }), logger),
    (err: Error & { code?: string }) => err.code === 'IOT_ERR_TLS' && /not usable together/.test(err.message))
})

test('a socket that opens the TLS port and never finishes its handshake is closed after PUSHLINE_CONNECT_TIMEOUT_MS', { timeout: 120_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const p = await startTestPlatform(t, { env: { ...tlsEnv(certs), PUSHLINE_CONNECT_TIMEOUT_MS: '500' } })
  const socket = netConnect(p.mqttsPort ?? 0, '127.0.0.1')
  t.after(() => { socket.destroy() })
  socket.on('error', () => {})
  socket.resume()
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await bounded('the half-open TLS socket to be closed', closed)
})

test('PUSHLINE_TLS_CA_FILE: a certificate signed by an intermediate CA is trusted by a client that knows only the root once the intermediate is configured, not before', { timeout: 120_000 }, async (t) => {
  const chain = await makeChain(t)
  const env = { PUSHLINE_TLS_CERT_FILE: chain.leafFile, PUSHLINE_TLS_KEY_FILE: chain.keyFile, PUSHLINE_MQTTS_PORT: '0', PUSHLINE_WSS_PORT: '0' }
  const without = await startTestPlatform(t, { env })
  const { token: early } = await without.provision('chain-dev')
  await assert.rejects(connectDevice(t, `mqtts://127.0.0.1:${without.mqttsPort ?? 0}`, 'chain-dev', early, { ca: chain.root }),
    (err: Error & { code?: string }) => err.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'without the intermediate the chain does not reach the root')

  const withCa = await startTestPlatform(t, { env: { ...env, PUSHLINE_TLS_CA_FILE: chain.intermediateFile } })
  const { token } = await withCa.provision('chain-dev')
  const overTls = await connectDevice(t, `mqtts://127.0.0.1:${withCa.mqttsPort ?? 0}`, 'chain-dev', token, { ca: chain.root })
  await overTls.publishAsync('devices/chain-dev/telemetry', 'chained', { qos: 1 })
  const overWss = await connectDevice(t, `wss://127.0.0.1:${withCa.wssPort ?? 0}/mqtt`, 'chain-dev', token, { ca: chain.root })
  await overWss.publishAsync('devices/chain-dev/telemetry', 'chained-wss', { qos: 1 })
})
