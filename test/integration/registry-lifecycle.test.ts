import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt'
import { bounded } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'

// Deleting, rotating and refreshing, in embedded mode (memory stores) and with Redis stores, over real HTTP and MQTT.

const modes = [
  { mode: 'memory', start: async (t: TestContext, env: Record<string, string> = {}) => await startTestPlatform(t, { env }) },
  { mode: 'redis', start: async (t: TestContext, env: Record<string, string> = {}) => await startTestPlatform(t, { clusterPrefix: uniquePrefix(), env }) }
]

/** Connects and resolves with the client and its CONNACK (MQTT.js's connectAsync hides the session-present flag). */
async function connectWithAck (t: TestContext, p: TestPlatform, id: string, token: string, clean: boolean): Promise<{ client: MqttClient, connack: IConnackPacket }> {
  const client = mqtt.connect(p.mqttUrl, { clientId: id, username: id, password: token, clean, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 })
  t.after(() => client.endAsync(true))
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  return { client, connack }
}

function nextMessage (client: MqttClient): Promise<{ topic: string, payload: string, retain: boolean }> {
  return new Promise((resolve) => client.once('message', (topic, payload, packet) => resolve({ topic, payload: payload.toString(), retain: packet.retain })))
}

function aedesPublish (p: TestPlatform, packet: { topic: string, payload: string, qos: 0 | 1, retain: boolean }): Promise<void> {
  const aedes = p.broker?.aedes
  assert.ok(aedes !== undefined)
  return new Promise((resolve, reject) => {
    aedes.publish({ cmd: 'publish', dup: false, ...packet, payload: Buffer.from(packet.payload) }, (err) => { if (err != null) reject(err); else resolve() })
  })
}

for (const { mode, start } of modes) {
  test(`${mode}: deleting a device forgets its tokens, downlink history, MQTT session and retained downlink; the id registered again starts clean`, { timeout: 60_000 }, async (t) => {
    const p = await start(t)
    const id = 'gone-1'
    const { token: oldToken } = await p.provision(id)
    const { client: old } = await connectWithAck(t, p, id, oldToken, false)
    await old.subscribeAsync(`devices/${id}/down`, { qos: 1 })
    const first = nextMessage(old)
    assert.equal((await p.api('POST', '/v1/admin/push', { deviceId: id, data: { n: 1 }, qos: 1, ttlSeconds: 600 })).status, 202)
    assert.match((await first).payload, /"n":1/)
    await old.endAsync()
    // While it is offline: a downlink kept in its history, a message queued in its MQTT session, a retained one.
    assert.equal((await p.api('POST', '/v1/admin/push', { deviceId: id, data: { n: 2 }, qos: 1, ttlSeconds: 600 })).status, 202)
    await aedesPublish(p, { topic: `devices/${id}/down`, payload: 'queued in the session', qos: 1, retain: false })
    await aedesPublish(p, { topic: `devices/${id}/down`, payload: 'retained', qos: 0, retain: true })

    assert.equal((await p.api('DELETE', `/v1/admin/devices/${id}`)).status, 204)
    const secret = await p.createDevice(id)
    const token = await p.token(id, secret)
    const pulled = await p.api('GET', '/v1/devices/me/messages', undefined, { authorization: `Bearer ${token}` })
    assert.equal(pulled.status, 200)
    assert.deepEqual(pulled.body.messages, [], 'none of the old device\'s downlinks')
    await assert.rejects(connectDevice(t, p.mqttUrl, id, oldToken), /Bad username or password/i)

    const { client, connack } = await connectWithAck(t, p, id, token, false)
    assert.equal(connack.sessionPresent, false, 'no session to resume')
    const got: string[] = []
    client.on('message', (_topic, payload) => { got.push(payload.toString()) })
    const marker = new Promise<void>((resolve) => client.on('message', (_topic, payload) => { if (payload.toString().includes('"marker"')) resolve() }))
    await client.subscribeAsync(`devices/${id}/down`, { qos: 1 })
    // Whatever the old session or the retained store still held would arrive before this push, which comes after the subscribe.
    assert.equal((await p.api('POST', '/v1/admin/push', { deviceId: id, data: 'marker', qos: 1, ttlSeconds: 600 })).status, 202)
    await marker
    assert.equal(got.length, 1, `only the new push arrives, got ${JSON.stringify(got)}`)
    assert.match(got[0] as string, /"id":1,/, 'its message ids start again from 1')
  })

  test(`${mode}: rotating a secret revokes the device's tokens and ends its live connection`, { timeout: 30_000 }, async (t) => {
    const p = await start(t)
    const { token } = await p.provision('rot-live')
    const client = await connectDevice(t, p.mqttUrl, 'rot-live', token)
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    const rotated = await p.api('POST', '/v1/admin/devices/rot-live/secret')
    assert.equal(rotated.status, 200)
    await closed
    assert.equal((await p.api('POST', '/v1/devices/rot-live/token', { token }, {})).status, 401, 'the old token cannot refresh itself')
    await assert.rejects(connectDevice(t, p.mqttUrl, 'rot-live', token), /Bad username or password/i)
    await connectDevice(t, p.mqttUrl, 'rot-live', await p.token('rot-live', rotated.body.secret as string))
  })

  test(`${mode}: parallel refreshes of one token over HTTP give exactly one working token`, { timeout: 30_000 }, async (t) => {
    const p = await start(t, { PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE: '1000', PUSHLINE_SECRET_MAX_FAILURES: '1000' })
    const { token } = await p.provision('refresh-race')
    const n = 16
    const answers = await Promise.all(Array.from({ length: n }, async () => await p.api('POST', '/v1/devices/refresh-race/token', { token }, {})))
    const ok = answers.filter((a) => a.status === 200)
    assert.equal(ok.length, 1, `statuses ${answers.map((a) => a.status).join(',')}`)
    assert.deepEqual(answers.filter((a) => a.status !== 200).map((a) => a.body.error), Array(n - 1).fill('IOT_ERR_BAD_CREDENTIALS'))
    await connectDevice(t, p.mqttUrl, 'refresh-race', ok[0]?.body.token as string)
    await assert.rejects(connectDevice(t, p.mqttUrl, 'refresh-race', token), /Bad username or password/i)
  })
}

test('redis: two drops of one stored session at once both finish, and the session is gone', { timeout: 60_000 }, async (t) => {
  // A deletion through the API drops the session while the deletion's kick, reaching the same process, drops it too.
  const p = await modes[1]!.start(t)
  const broker = p.broker
  assert.ok(broker !== undefined)
  const id = 'dropped-twice'
  const { token } = await p.provision(id)
  const { client } = await connectWithAck(t, p, id, token, false)
  await client.subscribeAsync([`devices/${id}/down`, 'broadcast/all'], { qos: 1 })
  await client.endAsync()
  await bounded('both drops of the session', Promise.all([broker.dropSession(id), broker.dropSession(id), broker.dropSession(id)]), 20_000)
  const again = await connectWithAck(t, p, id, token, false)
  assert.equal(again.connack.sessionPresent, false)
})
