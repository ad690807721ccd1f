import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { readSpool, type SpoolRecord } from '../../src/uplink/file-spool.ts'
import { bounded } from '../helpers/eventually.ts'
import { connectDevice, rawConnect } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'

async function spooled (dataDir: string): Promise<SpoolRecord[]> {
  const out: SpoolRecord[] = []
  for await (const r of readSpool(join(dataDir, 'spool'))) out.push(r)
  return out
}

test('a device created by an operator gets a token, connects with MQTT.js, and its QoS 1 uplink is in the spool when PUBACK arrives', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const created = await p.api('POST', '/v1/admin/devices', { id: 'sensor-1', groups: ['hall'] })
  assert.equal(created.status, 201)
  assert.deepEqual(created.body.groups, ['hall'])

  const tokenRes = await p.api('POST', '/v1/devices/sensor-1/token', { secret: created.body.secret }, {})
  assert.equal(tokenRes.status, 200)
  assert.equal(tokenRes.body.broker.mqtt, p.mqttUrl)
  assert.equal(tokenRes.body.broker.ws, p.wsUrl)
  assert.ok(tokenRes.body.expiresAt > Date.now() + 23 * 3600_000, 'default expiry is 24 hours')

  const client = await connectDevice(t, tokenRes.body.broker.mqtt, 'sensor-1', tokenRes.body.token)
  const payload = Buffer.from([0x7b, 0x00, 0xff, 0x10, 0x22])
  await client.publishAsync('devices/sensor-1/telemetry/temp', payload, { qos: 1 })

  // No wait: PUBACK is sent only after the spool holds the uplink.
  const records = await spooled(p.dataDir)
  assert.equal(records.length, 1)
  const r = records[0] as SpoolRecord
  assert.equal(r.deviceId, 'sensor-1')
  assert.equal(r.topic, 'devices/sensor-1/telemetry/temp')
  assert.equal(r.kind, 'telemetry')
  assert.equal(r.qos, 1)
  assert.equal(r.nodeId, p.config.nodeId)
  assert.match(r.traceId, /^[0-9a-f]{32}$/)
  assert.deepEqual(r.payload, payload)
  assert.equal(await p.metric('pushline_uplinks_total', { kind: 'telemetry', qos: '1' }), 1)
})

test('events and QoS 0 telemetry reach the spool in the order a device sent them, each with its own message id', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('dev-order')
  const client = await connectDevice(t, p.mqttUrl, 'dev-order', token)
  for (let i = 0; i < 50; i++) client.publish('devices/dev-order/telemetry', String(i), { qos: 0 })
  await client.publishAsync('devices/dev-order/events', 'last', { qos: 1 })
  const records = await spooled(p.dataDir)
  assert.deepEqual(records.map((r) => r.payload.toString()), [...Array.from({ length: 50 }, (_, i) => String(i)), 'last'])
  assert.equal(records[50]?.kind, 'events')
  assert.equal(new Set(records.map((r) => r.msgId)).size, 51)
})

test('a device connects over MQTT over WebSocket on /mqtt', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('ws-dev')
  const client = await connectDevice(t, p.wsUrl, 'ws-dev', token)
  await client.publishAsync('devices/ws-dev/telemetry', 'over ws', { qos: 1 })
  assert.equal((await spooled(p.dataDir))[0]?.topic, 'devices/ws-dev/telemetry')
})

test('a standard MQTT 3.1.1 client (mosquitto_pub) publishes an uplink with a token', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('mosq-dev')
  await promisify(execFile)('mosquitto_pub', ['-V', 'mqttv311', '-h', '127.0.0.1', '-p', String(p.mqttPort), '-i', 'mosq-dev', '-u', 'mosq-dev', '-P', token,
    '-q', '1', '-t', 'devices/mosq-dev/telemetry', '-m', 'from mosquitto'])
  const records = await spooled(p.dataDir)
  assert.equal((records[0]?.payload ?? Buffer.alloc(0)).toString(), 'from mosquitto')
})

test('a standard client with a wrong token is refused and exits non-zero', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  await p.provision('mosq-bad')
  await assert.rejects(promisify(execFile)('mosquitto_pub', ['-V', 'mqttv311', '-h', '127.0.0.1', '-p', String(p.mqttPort), '-i', 'mosq-bad', '-u', 'mosq-bad', '-P', 'nope',
    '-q', '1', '-t', 'devices/mosq-bad/telemetry', '-m', 'x']), /not authorised|Connection Refused|bad user/i)
  assert.deepEqual(await spooled(p.dataDir), [])
})

test('a wrong token gets CONNACK 4 and the socket is closed; the refusal is counted and the token is not logged', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('dev-wrong')
  const wrong = token.slice(0, -4) + 'AAAA'
  const raw = await rawConnect(t, p.mqttPort as number)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'dev-wrong', keepalive: 30, username: 'dev-wrong', password: Buffer.from(wrong) })
  const connack = await bounded('the CONNACK of a wrong token', raw.next())
  assert.equal(connack.cmd, 'connack')
  assert.equal((connack as { returnCode: number }).returnCode, 4)
  await bounded('the refused connection to close', raw.closed)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'bad_credentials' }), 1)
  assert.ok(!p.logText().includes(wrong), 'the refused token is not in the logs')
  assert.ok(!p.logText().includes(token), 'the real token is not in the logs')
})

test('refused connects: empty and over-long client ids get CONNACK 2, a username that is not the client id 4, no credentials 5', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('dev-ids')
  const cases = [
    { clientId: '', username: 'dev-ids', password: token, rc: 2 },
    { clientId: 'x'.repeat(65), username: 'x'.repeat(65), password: token, rc: 2 },
    { clientId: 'dev/ids', username: 'dev/ids', password: token, rc: 2 },
    { clientId: 'dev-ids', username: 'someone-else', password: token, rc: 4 },
    { clientId: 'dev-ids', rc: 5 },
    { clientId: 'unknown-device', username: 'unknown-device', password: token, rc: 4 }
  ]
  for (const c of cases) {
    const raw = await rawConnect(t, p.mqttPort as number)
    raw.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: c.clientId,
      keepalive: 30,
      ...(c.username !== undefined && { username: c.username, password: Buffer.from(c.password) })
    })
    const connack = await bounded(`the CONNACK of client id "${c.clientId.slice(0, 10)}"`, raw.next())
    assert.equal((connack as { returnCode: number }).returnCode, c.rc, `client id "${c.clientId.slice(0, 10)}"`)
    await bounded(`the refused connection of client id "${c.clientId.slice(0, 10)}" to close`, raw.closed)
  }
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'bad_client_id' }), 3)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'anonymous_off' }), 1)
})

/** A CONNECT packet: the variable header's parts as given, then the payload. */
function connectBytes ({ name = 'MQTT', level = 4, flags = 0x02, payload = Buffer.from([0x00, 0x01, 0x78]) }: { name?: string, level?: number, flags?: number, payload?: Buffer }): Buffer {
  const variable = Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([level, flags, 0x00, 0x3c]), payload])
  return Buffer.concat([Buffer.from([0x10, variable.length]), variable])
}

const MALFORMED: ReadonlyArray<readonly [string, Buffer]> = [
  ['CONNECT with a bad length and trailing junk', Buffer.from([0x10, 0x05, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0xff, 0xff, 0xff])],
  ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
  ['reserved packet type 0', Buffer.from([0x00, 0x00])],
  ['reserved packet type 15', Buffer.from([0xf0, 0x00])],
  ['a remaining length of five bytes', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])],
  ['CONNECT with protocol name MQTX', connectBytes({ name: 'MQTX' })],
  ['CONNECT with protocol level 9', connectBytes({ level: 9 })],
  ['CONNECT with the reserved flag set', connectBytes({ flags: 0x03 })],
  ['CONNECT whose username flag has no username', connectBytes({ flags: 0x82 })],
  ['CONNECT whose will flag has no will', connectBytes({ flags: 0x06 })],
  ['CONNECT with a client id longer than the packet', connectBytes({ payload: Buffer.from([0x00, 0x40, 0x78]) })],
  ['PUBLISH before CONNECT', Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x68, 0x69])],
  ['PUBLISH with QoS 3 before CONNECT', Buffer.from([0x36, 0x07, 0x00, 0x01, 0x61, 0x00, 0x01, 0x68, 0x69])],
  ['SUBSCRIBE with wrong fixed-header flags before CONNECT', Buffer.from([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x01])],
  ['PINGREQ before CONNECT', Buffer.from([0xc0, 0x00])],
  ['DISCONNECT with a body', Buffer.from([0xe0, 0x02, 0x00, 0x00])]
]

test('a malformed MQTT packet closes that socket and nothing else', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('dev-survivor')
  const survivor = await connectDevice(t, p.mqttUrl, 'dev-survivor', token)

  for (const [what, bytes] of MALFORMED) {
    const raw = await rawConnect(t, p.mqttPort as number)
    raw.socket.write(bytes)
    await bounded(`the socket sent ${what} to be closed`, raw.closed, 30_000)
  }

  await survivor.publishAsync('devices/dev-survivor/telemetry', 'still here', { qos: 1 })
  assert.equal((await spooled(p.dataDir)).length, 1)
})

test('an oversized payload is refused and counted; the connection and later uplinks go on', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_MAX_PAYLOAD_BYTES: '1024' } })
  const { token } = await p.provision('dev-big')
  const client = await connectDevice(t, p.mqttUrl, 'dev-big', token)
  await client.publishAsync('devices/dev-big/telemetry', Buffer.alloc(1025, 1), { qos: 1 })
  await client.publishAsync('devices/dev-big/telemetry', Buffer.alloc(1024, 2), { qos: 1 })
  const records = await spooled(p.dataDir)
  assert.equal(records.length, 1)
  assert.equal((records[0]?.payload ?? Buffer.alloc(0)).length, 1024)
  assert.equal(await p.metric('pushline_uplinks_refused_total', { reason: 'too_large' }), 1)
  assert.equal(client.connected, true)
})

test('the spool is flushed and closed on shutdown and a new start appends after the old records', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('dev-restart')
  const client = await connectDevice(t, p.mqttUrl, 'dev-restart', token)
  await client.publishAsync('devices/dev-restart/telemetry', 'one', { qos: 1 })
  await client.endAsync()
  await p.close()

  const p2 = await startTestPlatform(t, { env: { PUSHLINE_DATA_DIR: p.dataDir } })
  const { token: t2 } = await p2.provision('dev-restart')
  const c2 = await connectDevice(t, p2.mqttUrl, 'dev-restart', t2)
  await c2.publishAsync('devices/dev-restart/telemetry', 'two', { qos: 1 })
  const records = await spooled(p.dataDir)
  assert.deepEqual(records.map((r) => [r.seq, r.payload.toString()]), [[0, 'one'], [1, 'two']])
})
