import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { bounded, eventually } from '../helpers/eventually.ts'
import { connectDevice, rawConnect } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'

// What MQTT 3.1.1 promises holds the same when two clients sit on different nodes. Anonymous mode lets generic
// clients use any topic, as the protocol tests need; device topics and the ACL are tested elsewhere.

async function twoNodes (t: TestContext): Promise<[TestPlatform, TestPlatform]> {
  const prefix = uniquePrefix()
  const env = { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true', PUSHLINE_HEARTBEAT_MS: '500' }
  return [await startTestPlatform(t, { clusterPrefix: prefix, env }), await startTestPlatform(t, { clusterPrefix: prefix, env })]
}

const anon = { username: undefined, password: undefined }
const uid = (): string => randomUUID().slice(0, 8)

function nextMessage (c: MqttClient): Promise<{ topic: string, payload: string, retain: boolean, qos: number }> {
  return bounded('a message', new Promise((resolve) => {
    c.once('message', (topic, payload, packet) => { resolve({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos }) })
  }))
}

function collect (c: MqttClient): string[] {
  const got: string[] = []
  c.on('message', (_topic, payload) => got.push(payload.toString()))
  return got
}

/** Every message as "payload@qos", in arrival order. */
function collectWithQos (c: MqttClient): string[] {
  const got: string[] = []
  c.on('message', (_topic, payload, packet) => got.push(`${payload.toString()}@${packet.qos}`))
  return got
}

test('across nodes: a retained message published on node A is delivered with retain set to a subscriber that joins on node B', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  const topic = `r/${uid()}`
  const pub = await connectDevice(t, a.mqttUrl, `pub-${uid()}`, '', anon)
  await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
  const sub = await connectDevice(t, b.mqttUrl, `sub-${uid()}`, '', anon)
  const got = nextMessage(sub)
  await sub.subscribeAsync(topic, { qos: 1 })
  assert.deepEqual(await got, { topic, payload: 'kept', retain: true, qos: 1 })
})

test('across nodes: QoS 1 messages for an offline persistent session are queued and delivered in order when it reconnects on the other node', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  const topic = `q/${uid()}`
  const id = `persist-${uid()}`
  const first = await connectDevice(t, a.mqttUrl, id, '', { ...anon, clean: false })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  const pub = await connectDevice(t, a.mqttUrl, `pub-${uid()}`, '', anon)
  for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })

  const back = await connectDevice(t, b.mqttUrl, id, '', { ...anon, clean: false })
  const got = collect(back)
  assert.ok(await eventually(() => got.includes('m4')), `the last queued message arrives (got ${JSON.stringify(got)})`)
  // QoS 1 allows a duplicate (a message still in flight at the reconnect is both queued and routed live), but
  // never a message overtaking an older one.
  assert.deepEqual([...new Set(got)], ['m0', 'm1', 'm2', 'm3', 'm4'])
})

test('across nodes: a QoS 1 message delivered but not acknowledged is sent again when the session reconnects on the other node', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  const topic = `u/${uid()}`
  const id = `noack-${uid()}`
  const first = await connectDevice(t, a.mqttUrl, id, '', { ...anon, clean: false })
  await first.subscribeAsync(topic, { qos: 1 })
  // Swallow the PUBACK: the broker keeps the message as in flight.
  const streamBuilder = first as unknown as { handleMessage: (packet: unknown, cb: () => void) => void }
  const received = new Promise<void>((resolve) => {
    streamBuilder.handleMessage = (_packet, _cb) => { resolve() }
  })
  const pub = await connectDevice(t, b.mqttUrl, `pub-${uid()}`, '', anon)
  await pub.publishAsync(topic, 'again', { qos: 1 })
  await received
  first.end(true)
  // Only the publisher is left online once node A has closed the first connection.
  assert.ok(await eventually(async () => (await b.api('GET', '/v1/admin/stats')).body.online === 1), 'the first connection is closed')

  const back = await connectDevice(t, b.mqttUrl, id, '', { ...anon, clean: false })
  const msg = await nextMessage(back)
  assert.equal(msg.payload, 'again')
})

test('across nodes: overlapping subscriptions deliver one copy at the highest QoS granted (MQTT 3.1.1 §3.3.5), and unsubscribe stops delivery', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  const base = `o/${uid()}`
  const markers = `${base}-marker`
  const sub = await connectDevice(t, b.mqttUrl, `sub-${uid()}`, '', anon)
  await sub.subscribeAsync({ [`${base}/x`]: { qos: 1 }, [`${base}/+`]: { qos: 0 }, [markers]: { qos: 1 } })
  const got = collectWithQos(sub)
  const pub = await connectDevice(t, a.mqttUrl, `pub-${uid()}`, '', anon)
  // Each marker is published after the message it follows, by the same client: once it is in, so is the message.
  await pub.publishAsync(`${base}/x`, 'one', { qos: 1 })
  await pub.publishAsync(markers, 'marker1', { qos: 1 })
  assert.ok(await eventually(() => got.includes('marker1@1')), JSON.stringify(got))
  assert.deepEqual(got.filter((m) => m.startsWith('one')), ['one@1'], 'one copy, at QoS 1 (granted on x) rather than 0 (granted on +)')
  await sub.unsubscribeAsync([`${base}/x`, `${base}/+`])
  got.length = 0
  await pub.publishAsync(`${base}/x`, 'two', { qos: 1 })
  await pub.publishAsync(markers, 'marker2', { qos: 1 })
  assert.ok(await eventually(() => got.includes('marker2@1')), JSON.stringify(got))
  assert.deepEqual(got, ['marker2@1'])
})

test('across nodes: the will of a client that vanishes on node A reaches a subscriber on node B', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  const topic = `w/${uid()}`
  const watcher = await connectDevice(t, b.mqttUrl, `watch-${uid()}`, '', anon)
  await watcher.subscribeAsync(topic, { qos: 1 })
  const got = nextMessage(watcher)
  const doomed = await connectDevice(t, a.mqttUrl, `doomed-${uid()}`, '', { ...anon, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } })
  // A dropped socket, not a DISCONNECT: the will must fire.
  ;(doomed as unknown as { stream: { destroy: () => void } }).stream.destroy()
  assert.equal((await got).payload, 'gone')
})

test('across nodes: a silent client is dropped after 1.5 keepalive periods and its presence ends', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  // A raw client: it sends CONNECT and then nothing, not even PINGREQ.
  const raw = await rawConnect(t, a.mqttPort as number)
  const start = Date.now()
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `silent-${uid()}`, keepalive: 1 })
  assert.equal((await bounded('the CONNACK of the silent client', raw.next())).cmd, 'connack')
  assert.ok(await eventually(async () => (await b.api('GET', '/v1/admin/stats')).body.online === 1), 'the silent client is online')
  await bounded('the silent client to be dropped', raw.closed)
  const after = Date.now() - start
  // Not before 1.5 periods of silence (a timer may fire a millisecond early); how much later a busy machine
  // gets to it is no part of the check.
  assert.ok(after >= 1499, `dropped ${after} ms after its CONNECT, keepalive 1 s`)
  assert.ok(await eventually(async () => (await b.api('GET', '/v1/admin/stats')).body.online === 0), 'presence follows the keepalive drop')
})

test('across nodes: the first packet of a resumed persistent session is always CONNACK, even while messages for it are still being routed', { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoNodes(t)
  const pub = await connectDevice(t, a.mqttUrl, `pub-${uid()}`, '', anon)
  const tag = uid()
  for (let i = 0; i < 30; i++) {
    const id = `resume-${tag}-${i}`
    const topic = `resume/${tag}/${i}`
    const first = await connectDevice(t, a.mqttUrl, id, '', { ...anon, clean: false })
    await first.subscribeAsync(topic, { qos: 1 })
    await first.endAsync()
    // PUBACK comes before aedes has routed the message, so the last ones are still in flight on node A
    // while the session resumes on node B.
    for (let j = 0; j < 5; j++) await pub.publishAsync(topic, `m${j}`, { qos: 1 })
    const raw = await rawConnect(t, b.mqttPort as number)
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: id, keepalive: 30 })
    const firstPacket = await bounded(`the first packet of resumed session ${i}`, raw.next())
    assert.equal(firstPacket.cmd, 'connack', `reconnect ${i}: got ${firstPacket.cmd} first`)
    raw.socket.destroy()
  }
})

test('a persistent session whose device stays offline past the expiry is deleted: its queue empties and it resumes without a session', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const env = { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true', PUSHLINE_HEARTBEAT_MS: '200', PUSHLINE_SESSION_EXPIRY_SECONDS: '1' }
  const a = await startTestPlatform(t, { clusterPrefix: prefix, env })
  const id = `expiring-${uid()}`
  const keep = `kept-${uid()}`
  const topic = `exp/${uid()}`
  const old = await connectDevice(t, a.mqttUrl, id, '', { ...anon, clean: false })
  await old.subscribeAsync(topic, { qos: 1 })
  await old.endAsync()
  const fresh = await connectDevice(t, a.mqttUrl, keep, '', { ...anon, clean: false })
  await fresh.subscribeAsync(topic, { qos: 1 })

  // Expiry 1 s, reaper every second: the only stale session under this prefix is the one to reap.
  assert.ok(await eventually(() => a.logs.some((l) => l.event === 'sessions_reaped' && l.count === 1)), 'the stale session is reaped')
  const keptGot = collect(fresh)
  const pub = await connectDevice(t, a.mqttUrl, `pub-${uid()}`, '', anon)
  await pub.publishAsync(topic, 'after expiry', { qos: 1 })
  assert.ok(await eventually(() => keptGot.includes('after expiry')), 'the message was routed to the live subscription')
  const back = await connectDevice(t, a.mqttUrl, id, '', { ...anon, clean: false })
  const got = collect(back)
  // A queue is delivered right after CONNACK, before anything published after it: the marker comes later.
  const marker = `exp-marker/${uid()}`
  await back.subscribeAsync(marker, { qos: 1 })
  await pub.publishAsync(marker, 'marker', { qos: 1 })
  assert.ok(await eventually(() => got.includes('marker')), JSON.stringify(got))
  got.splice(got.indexOf('marker'), 1)
  assert.equal((back as unknown as { _resubscribeTopics?: unknown, connackPacket?: { sessionPresent: boolean } }).connackPacket?.sessionPresent, false)
  assert.deepEqual(got, [], 'nothing was queued for the expired session')
  assert.ok(a.logs.some((l) => l.event === 'sessions_reaped'))
  assert.equal(fresh.connected, true, 'an online persistent session is never reaped')
})
