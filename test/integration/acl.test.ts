import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { connectDevice, refusedSubscription } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'

const DENIED = 128

test('the ACL matrix: a device subscribes only to its own down topic, broadcast/all and its own groups', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('acl-a', ['g1'])
  await p.provision('acl-b', ['g2'])
  const a = await connectDevice(t, p.mqttUrl, 'acl-a', token)
  const matrix: Array<[string, number]> = [
    ['devices/acl-a/down', 1],
    ['broadcast/all', 1],
    ['broadcast/groups/g1', 1],
    ['devices/acl-b/down', DENIED],
    ['devices/acl-b/telemetry', DENIED],
    ['devices/acl-a/telemetry', DENIED],
    ['#', DENIED],
    ['+/+', DENIED],
    ['devices/+/down', DENIED],
    ['devices/acl-a/#', DENIED],
    ['$SYS/#', DENIED],
    ['broadcast/groups/g2', DENIED],
    ['broadcast/#', DENIED],
    ['unknown/topic', DENIED]
  ]
  for (const [topic, expected] of matrix) {
    const granted = await new Promise<number>((resolve, reject) => {
      a.subscribe(topic, { qos: 1 }, (err, g) => {
        // MQTT.js reports a refused subscription as an error that carries the SUBACK.
        const packet = (err as { packet?: { granted: number[] } } | null)?.packet
        if (packet !== undefined) return resolve(packet.granted[0] as number)
        if (err != null) return reject(err)
        resolve(g?.[0]?.qos as number)
      })
    })
    assert.equal(granted, expected, topic)
  }
  assert.equal(await p.metric('pushline_acl_denied_total', { op: 'subscribe' }), matrix.filter(([, g]) => g === DENIED).length)
})

test('the ACL matrix: a publish outside the device\'s own uplink topics is dropped and counted, the connection stays', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('pub-a')
  const { token: tokenB } = await p.provision('pub-b')
  const a = await connectDevice(t, p.mqttUrl, 'pub-a', token)
  const b = await connectDevice(t, p.mqttUrl, 'pub-b', tokenB)
  const received: string[] = []
  await b.subscribeAsync('devices/pub-b/down', { qos: 1 })
  b.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`))

  const forbidden = ['devices/pub-b/telemetry', 'devices/pub-b/down', 'devices/pub-a/down', 'broadcast/all', 'broadcast/groups/g1', 'devices/pub-a/telemetry/x/y', 'random']
  for (const topic of forbidden) await a.publishAsync(topic, 'nope', { qos: 1 })
  await a.publishAsync('devices/pub-a/telemetry', 'fine', { qos: 1 })

  const spooled = []
  for await (const r of readSpool(join(p.dataDir, 'spool'))) spooled.push(r.topic)
  assert.deepEqual(spooled, ['devices/pub-a/telemetry'])
  // Marker: a push to the other device, sent after every forbidden publish was acknowledged, comes after anything
  // those publishes would have written to it.
  const marker = await p.api('POST', '/v1/admin/push', { deviceId: 'pub-b', data: 'marker' })
  assert.equal(marker.status, 202, JSON.stringify(marker.body))
  const markerId = marker.body.pushId as string
  await waitUntil('the marker push to reach the other device', () => received.some((m) => m.includes(markerId)))
  assert.equal(received.length, 1, `only the marker reached another device: ${received.join(', ')}`)
  assert.equal(await p.metric('pushline_acl_denied_total', { op: 'publish' }), forbidden.length)
  assert.equal(a.connected, true)
})

test('with PUSHLINE_ACL_DENY_ACTION=disconnect a forbidden publish closes the connection', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_ACL_DENY_ACTION: 'disconnect' } })
  const { token } = await p.provision('strict-a')
  const a = await connectDevice(t, p.mqttUrl, 'strict-a', token)
  const closed = new Promise<void>((resolve) => a.once('close', () => resolve()))
  a.publish('devices/other/telemetry', 'nope', { qos: 0 })
  await bounded('the connection to close after a forbidden publish', closed)
})

test('a device cannot publish to $SYS, which would let it kick other devices', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('sys-a')
  const { token: victimToken } = await p.provision('victim')
  const victim = await connectDevice(t, p.mqttUrl, 'victim', victimToken)
  const a = await connectDevice(t, p.mqttUrl, 'sys-a', token)
  const closed = new Promise<void>((resolve) => a.once('close', () => resolve()))
  a.publish(`$SYS/${p.config.nodeId}/new/clients`, 'victim', { qos: 0 })
  await bounded('the connection to close after a publish to $SYS', closed)
  await victim.publishAsync('devices/victim/telemetry', 'still connected', { qos: 1 })
  assert.equal(victim.connected, true)
})

test('a will on a topic the device may not publish to is refused at CONNECT', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('will-a')
  await assert.rejects(connectDevice(t, p.mqttUrl, 'will-a', token, { will: { topic: 'devices/other/down', payload: Buffer.from('x'), qos: 0, retain: false } }), /Not authorized/i)
  await connectDevice(t, p.mqttUrl, 'will-a', token, { will: { topic: 'devices/will-a/events', payload: Buffer.from('gone'), qos: 1, retain: false } })
})

test('anonymous mode: clients without credentials connect and use any topic but $SYS; it is off by default', { timeout: 120_000 }, async (t) => {
  const off = await startTestPlatform(t)
  await assert.rejects(connectDevice(t, off.mqttUrl, 'tool', '', { username: undefined, password: undefined }), /Not authorized/i)

  const p = await startTestPlatform(t, { env: { PUSHLINE_ALLOW_ANONYMOUS: 'true' } })
  const sub = await connectDevice(t, p.mqttUrl, 'tool-sub', '', { username: undefined, password: undefined })
  const pub = await connectDevice(t, p.mqttUrl, 'tool-pub', '', { username: undefined, password: undefined })
  const granted = await sub.subscribeAsync('any/+/topic', { qos: 1 })
  assert.equal(granted[0]?.qos, 1)
  const got = new Promise<string>((resolve) => sub.once('message', (_topic, payload) => resolve(payload.toString())))
  await pub.publishAsync('any/x/topic', 'hello', { qos: 1 })
  assert.equal(await bounded('the anonymous subscriber\'s message', got), 'hello')
  await assert.rejects(sub.subscribeAsync('$SYS/#', { qos: 0 }), refusedSubscription)
})

test('anonymous mode: a registered device\'s id, its topics and wills on them still need its token', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_ALLOW_ANONYMOUS: 'true' } })
  const { token } = await p.provision('anon-real')
  const anonymous = { username: undefined, password: undefined }
  // Its id, without a token: CONNACK 5; with its token, the device itself connects.
  await assert.rejects(connectDevice(t, p.mqttUrl, 'anon-real', '', anonymous), /Not authorized/i)
  await assert.rejects(connectDevice(t, p.mqttUrl, 'anon-will', '', { ...anonymous, will: { topic: 'devices/anon-real/down', payload: Buffer.from('{"id":1}'), qos: 1, retain: true } }), /Not authorized/i)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'not_authorized' }), 2)

  // A retained message an anonymous client plants on the device's down topic is dropped and counted ...
  const tool = await connectDevice(t, p.mqttUrl, 'anon-tool', '', anonymous)
  await tool.publishAsync('devices/anon-real/down', JSON.stringify({ id: 99, data: 'planted' }), { qos: 1, retain: true })
  assert.equal(await p.metric('pushline_acl_denied_total', { op: 'publish' }), 1)
  // ... while topics of ids no device has are the anonymous client's to use.
  await tool.publishAsync('devices/not-registered/down', 'free', { qos: 1, retain: true })
  assert.equal(await p.metric('pushline_acl_denied_total', { op: 'publish' }), 1)

  // The device subscribes: a retained message would come right after its SUBACK, before the push sent after it.
  const device = await connectDevice(t, p.mqttUrl, 'anon-real', token)
  const got: string[] = []
  device.on('message', (_topic, payload) => { got.push(payload.toString()) })
  await device.subscribeAsync('devices/anon-real/down', { qos: 1 })
  const res = await p.api('POST', '/v1/admin/push', { deviceId: 'anon-real', data: 'real command' })
  assert.equal(res.status, 202)
  assert.ok(await eventually(async () => got.length > 0, 10_000), 'the push arrived')
  assert.deepEqual(got.map((m) => (JSON.parse(m) as { data: unknown }).data), ['real command'])
})
