import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { connectDevice, rawConnect, refusedSubscription, type RawConnection } from '../helpers/mqtt.ts'
import { startPlatformProcess } from '../helpers/process.ts'
import { redisUrl } from '../helpers/services.ts'

// Group and broadcast pushes reach devices that were offline or dropped: a node writes a broadcast still within
// its ttl to a device that subscribes to its topic, unless the device already got it (PUBACK) or acked it; the
// counts are of distinct devices.

const uid = (): string => randomUUID().slice(0, 8)

interface Downlink { topic: string, id: string, pushId: string, data: unknown }

function collect (c: MqttClient): Downlink[] {
  const got: Downlink[] = []
  c.on('message', (topic, payload) => { got.push({ topic, ...(JSON.parse(payload.toString()) as Omit<Downlink, 'topic'>) }) })
  return got
}

async function push (cluster: TestCluster, body: unknown): Promise<string> {
  const res = await cluster.api.api('POST', '/v1/admin/push', body)
  assert.equal(res.status, 202, JSON.stringify(res.body))
  return res.body.pushId as string
}

async function counts (cluster: TestCluster, pushId: string): Promise<Record<string, number>> {
  const res = await cluster.api.api('GET', `/v1/admin/push/${pushId}`)
  assert.equal(res.status, 200, JSON.stringify(res.body))
  return res.body.counts as Record<string, number>
}

/** Waits until the counts are exactly `want` (the other states 0). */
async function waitForCounts (cluster: TestCluster, pushId: string, want: Record<string, number>): Promise<void> {
  const expected = { queued: 0, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 0, ...want }
  let last: unknown
  const ok = await eventually(async () => { last = await counts(cluster, pushId); return JSON.stringify(last) === JSON.stringify(expected) }, 30_000)
  assert.ok(ok, `expected counts ${JSON.stringify(expected)}, got ${JSON.stringify(last)}`)
}

/** A device over a bare MQTT connection that PUBACKs nothing unless told. */
async function rawDevice (t: TestContext, port: number, id: string, token: string, topic: string): Promise<RawConnection> {
  const conn = await rawConnect(t, port)
  conn.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, keepalive: 60, username: id, password: Buffer.from(token) })
  const connack = await bounded(`the CONNACK of ${id}`, conn.next())
  assert.equal(connack.cmd, 'connack')
  assert.equal((connack as Packet & { returnCode: number }).returnCode, 0)
  conn.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
  assert.equal((await bounded(`the SUBACK of ${id}`, conn.next())).cmd, 'suback')
  return conn
}

/** The next PUBLISH on the connection, failing with `what` when none comes. */
async function nextPublish (conn: RawConnection, what: string): Promise<IPublishPacket> {
  return await bounded(what, (async () => {
    for (;;) {
      const p = await conn.next()
      if (p.cmd === 'publish') return p
    }
  })())
}

test('a broadcast with a ttl reaches a device that was offline when it connects within the ttl, on another node, and not beyond it', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const [n1, n2] = cluster.nodes as [TestCluster['nodes'][number], TestCluster['nodes'][number]]
  const online = `bo-${uid()}`
  const offline = `bf-${uid()}`
  const late = `bl-${uid()}`
  const tokens = new Map<string, string>()
  for (const id of [online, offline, late]) tokens.set(id, (await cluster.api.provision(id)).token)
  const first = await connectDevice(t, n1.mqttUrl, online, tokens.get(online) as string)
  await first.subscribeAsync('broadcast/all', { qos: 1 })
  const firstGot = collect(first)

  // Long enough for a busy machine to connect a device within it; the test waits it out below.
  const ttlSeconds = 15
  const pushId = await push(cluster, { all: true, data: { hello: 'later' }, ttlSeconds })
  // The API set the expiry before it answered: it has passed once the clock is past this.
  const expiredBy = Date.now() + ttlSeconds * 1000
  await waitForCounts(cluster, pushId, { delivered: 1 })

  // The offline device comes online on the other node within the ttl and subscribes: it gets the broadcast.
  const second = await connectDevice(t, n2.mqttUrl, offline, tokens.get(offline) as string)
  const secondGot = collect(second)
  await second.subscribeAsync('broadcast/all', { qos: 1 })
  assert.ok(await eventually(async () => secondGot.length === 1, 60_000), 'the device that was offline got nothing')
  assert.deepEqual(secondGot.map((m) => [m.topic, m.id, m.pushId, m.data]), [['broadcast/all', pushId, pushId, { hello: 'later' }]])
  await waitForCounts(cluster, pushId, { delivered: 2 })
  assert.equal(firstGot.length, 1, 'the device online at the time got it once')

  // Beyond the ttl, a device that subscribes gets nothing. Marker: a live broadcast its catch-up sends with any other.
  assert.ok(await eventually(() => Date.now() > expiredBy, 60_000, 100))
  const marker = await push(cluster, { all: true, data: 'marker', ttlSeconds: 60 })
  const third = await connectDevice(t, n1.mqttUrl, late, tokens.get(late) as string)
  const thirdGot = collect(third)
  await third.subscribeAsync('broadcast/all', { qos: 1 })
  assert.ok(await eventually(() => thirdGot.some((m) => m.pushId === marker)), 'the marker broadcast came')
  assert.deepEqual(thirdGot.map((m) => m.pushId), [marker])
  assert.deepEqual(await counts(cluster, pushId), { queued: 0, sent: 0, delivered: 2, acked: 0, expired: 0, failed: 0 })
})

test('a device that drops before PUBACKing a broadcast gets it again at its next subscribe, and counts once as delivered', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const [n1, n2] = cluster.nodes as [TestCluster['nodes'][number], TestCluster['nodes'][number]]
  const id = `bd-${uid()}`
  const { token } = await cluster.api.provision(id)
  const raw = await rawDevice(t, n1.mqttPort, id, token, 'broadcast/all')

  const pushId = await push(cluster, { all: true, data: { n: 1 }, ttlSeconds: 60 })
  const publish = await nextPublish(raw, 'the broadcast on the raw connection')
  assert.equal(publish.qos, 1)
  assert.equal((JSON.parse(publish.payload.toString()) as { pushId: string }).pushId, pushId)
  await waitForCounts(cluster, pushId, { sent: 1 })
  // Dropped without a PUBACK.
  raw.socket.destroy()
  await bounded('the raw connection to close', raw.closed)

  const again = await connectDevice(t, n2.mqttUrl, id, token)
  const got = collect(again)
  await again.subscribeAsync('broadcast/all', { qos: 1 })
  assert.ok(await eventually(async () => got.length === 1, 60_000), 'the broadcast did not come again')
  assert.equal(got[0]?.pushId, pushId)
  await waitForCounts(cluster, pushId, { delivered: 1 })
  // Marker: a later broadcast's PUBACK on the same connection is counted after this one's.
  const marker = await push(cluster, { all: true, data: 'marker', ttlSeconds: 60 })
  await waitForCounts(cluster, marker, { delivered: 1 })
  assert.deepEqual(await counts(cluster, pushId), { queued: 0, sent: 0, delivered: 1, acked: 0, expired: 0, failed: 0 })
})

test('a device that PUBACKed or acked a broadcast does not get it again after reconnecting', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const [n1, n2] = cluster.nodes as [TestCluster['nodes'][number], TestCluster['nodes'][number]]
  const pubacker = `bp-${uid()}`
  const acker = `ba-${uid()}`
  const tokens = new Map<string, string>()
  for (const id of [pubacker, acker]) tokens.set(id, (await cluster.api.provision(id)).token)
  const first = await connectDevice(t, n1.mqttUrl, pubacker, tokens.get(pubacker) as string)
  await first.subscribeAsync('broadcast/all', { qos: 1 })
  const firstGot = collect(first)
  // The acker never PUBACKs: only its application ack says it has the push.
  const raw = await rawDevice(t, n2.mqttPort, acker, tokens.get(acker) as string, 'broadcast/all')

  const pushId = await push(cluster, { all: true, data: { once: true }, ttlSeconds: 60 })
  await nextPublish(raw, 'the broadcast on the acker\'s raw connection')
  raw.send({ cmd: 'publish', topic: `devices/${acker}/ack`, payload: Buffer.from(JSON.stringify({ id: pushId })), qos: 0, retain: false, dup: false })
  assert.ok(await eventually(async () => firstGot.length === 1, 60_000))
  await waitForCounts(cluster, pushId, { delivered: 1, acked: 1 })
  await first.endAsync()
  raw.socket.destroy()
  await bounded('the raw connection to close', raw.closed)

  // Both come back, each on the other node, and subscribe again. Marker: a broadcast they have not had, which
  // their catch-up sends along with anything else it would send.
  const marker = await push(cluster, { all: true, data: 'marker', ttlSeconds: 60 })
  const agains = await Promise.all([[pubacker, n2], [acker, n1]].map(async ([id, node]) => {
    const c = await connectDevice(t, (node as { mqttUrl: string }).mqttUrl, id as string, tokens.get(id as string) as string)
    const got = collect(c)
    await c.subscribeAsync('broadcast/all', { qos: 1 })
    return got
  }))
  assert.ok(await eventually(() => agains.every((got) => got.some((m) => m.pushId === marker))), 'the marker came to both')
  assert.deepEqual(agains.map((got) => got.map((m) => m.pushId)), [[marker], [marker]])
  assert.deepEqual(await counts(cluster, pushId), { queued: 0, sent: 0, delivered: 1, acked: 1, expired: 0, failed: 0 })
})

test('a group push catches up only the group\'s members, and a persistent session whose subscription was restored', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const [n1, n2] = cluster.nodes as [TestCluster['nodes'][number], TestCluster['nodes'][number]]
  const group = `gc-${uid()}`
  const topic = `broadcast/groups/${group}`
  const member = `gm-${uid()}`
  const outsider = `go-${uid()}`
  const persistent = `gp-${uid()}`
  const tokens = new Map<string, string>()
  for (const [id, groups] of [[member, [group]], [outsider, []], [persistent, [group]]] as const) tokens.set(id, (await cluster.api.provision(id, [...groups])).token)
  // The persistent session subscribes, then goes offline before the push.
  const before = await connectDevice(t, n1.mqttUrl, persistent, tokens.get(persistent) as string, { clean: false })
  await before.subscribeAsync(topic, { qos: 1 })
  await before.endAsync()

  // The outsider, on the node the others come to, is online before the push: it also shows that the group's push
  // is not written to a device outside the group, live or caught up.
  const o = await connectDevice(t, n2.mqttUrl, outsider, tokens.get(outsider) as string)
  const outsiderGot = collect(o)
  // The outsider's subscription to the group's topic is refused; broadcast/all is not the group's push.
  await assert.rejects(o.subscribeAsync(topic, { qos: 1 }), refusedSubscription)
  await o.subscribeAsync('broadcast/all', { qos: 1 })

  const pushId = await push(cluster, { group, data: { to: group }, ttlSeconds: 60 })
  // Broadcast orders reach a node in the order they were sent, on one Redis channel: once the outsider has a later
  // broadcast, node 2 has the group's order, so the devices below subscribe after it and are caught up.
  const reached = await push(cluster, { all: true, data: 'the group push reached node 2', ttlSeconds: 1 })
  await waitUntil('a broadcast sent after the group push to reach node 2', () => outsiderGot.some((m) => m.pushId === reached))

  const m = await connectDevice(t, n2.mqttUrl, member, tokens.get(member) as string)
  const memberGot = collect(m)
  await m.subscribeAsync(topic, { qos: 1 })
  // The persistent session comes back (on the other node) without subscribing again.
  const p = await connectDevice(t, n2.mqttUrl, persistent, tokens.get(persistent) as string, { clean: false })
  const persistentGot = collect(p)

  assert.ok(await eventually(async () => memberGot.length === 1 && persistentGot.length === 1, 60_000),
    `member got ${memberGot.length}, restored session got ${persistentGot.length}`)
  await waitForCounts(cluster, pushId, { delivered: 2 })
  const marker = await push(cluster, { all: true, data: 'marker', ttlSeconds: 60 })
  assert.ok(await eventually(() => outsiderGot.some((m) => m.pushId === marker)), 'the marker came to the outsider')
  assert.deepEqual(outsiderGot.map((m) => m.pushId), [reached, marker])
  assert.deepEqual([...memberGot, ...persistentGot].map((d) => [d.topic, d.pushId, d.data]), [[topic, pushId, { to: group }], [topic, pushId, { to: group }]])
})

test('a node started after a broadcast loads it from Redis and catches up a device that subscribes there', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 500 })
  const id = `bn-${uid()}`
  const { token } = await cluster.api.provision(id)
  const pushId = await push(cluster, { all: true, data: { before: 'the node' }, ttlSeconds: 60 })
  const nodeId = `${cluster.prefix.replace(/[^A-Za-z0-9]/g, '')}-late`
  const late = await startPlatformProcess(t, {
    PUSHLINE_ROLE: 'broker', PUSHLINE_NODE_ID: nodeId, PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: cluster.prefix, PUSHLINE_PUBLIC_HOST: '127.0.0.1', PUSHLINE_HEARTBEAT_MS: '500'
  })
  await cluster.waitForNodes([nodeId])
  const c = await connectDevice(t, `mqtt://127.0.0.1:${late.mqttPort}`, id, token)
  const got = collect(c)
  await c.subscribeAsync('broadcast/all', { qos: 1 })
  assert.ok(await eventually(async () => got.length === 1, 60_000), 'the late node did not catch the device up')
  assert.equal(got[0]?.pushId, pushId)
  await waitForCounts(cluster, pushId, { delivered: 1 })
})
