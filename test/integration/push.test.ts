import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, type TestPlatform } from '../helpers/platform.ts'
import { connectRedis } from '../helpers/services.ts'
import { createRedisDeviceStore } from '../../src/stores/redis-device-store.ts'
import mqtt from 'mqtt'

// Push end to end: the API accepts a push, broker nodes write it to devices, receipts follow PUBACKs and
// application acks, offline devices catch up on reconnect or pull their history.

const uid = (): string => randomUUID().slice(0, 8)

interface Downlink { topic: string, id: number | string, pushId: string, sentAt: number, data: unknown }

function collect (c: MqttClient): Downlink[] {
  const got: Downlink[] = []
  c.on('message', (topic, payload) => { got.push({ topic, ...(JSON.parse(payload.toString()) as Omit<Downlink, 'topic'>) }) })
  return got
}

async function receipts (api: TestPlatform, pushId: string, query = ''): Promise<{ counts: Record<string, number>, devices: Array<{ deviceId: string, state: string, id?: number, reason?: string, at: number }>, progress: { processed: number, total?: number, done: boolean }, next?: string }> {
  const res = await api.api('GET', `/v1/admin/push/${pushId}${query}`)
  assert.equal(res.status, 200, JSON.stringify(res.body))
  return res.body
}

async function waitForState (api: TestPlatform, pushId: string, state: string, n = 1, ms = 30_000): Promise<void> {
  let last: unknown
  const ok = await eventually(async () => { const r = await receipts(api, pushId); last = r.counts; return r.counts[state] === n }, ms)
  assert.ok(ok, `expected ${n} ${state}, counts ${JSON.stringify(last)}`)
}

async function push (api: TestPlatform, body: unknown): Promise<string> {
  const res = await api.api('POST', '/v1/admin/push', body)
  assert.equal(res.status, 202, JSON.stringify(res.body))
  return res.body.pushId as string
}

test('embedded mode: a push reaches an online device, PUBACK makes it delivered and the device\'s ack makes it acked', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const id = `emb-${uid()}`
  const { token } = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  const got = collect(device)

  const pushId = await push(p, { deviceId: id, data: { cmd: 'reboot' }, qos: 1, ttlSeconds: 60 })
  assert.ok(await eventually(async () => got.length === 1), 'downlink not received')
  const msg = got[0] as Downlink
  assert.equal(msg.topic, `devices/${id}/down`)
  assert.equal(msg.id, 1)
  assert.equal(msg.pushId, pushId)
  assert.deepEqual(msg.data, { cmd: 'reboot' })
  assert.ok(Math.abs(msg.sentAt - Date.now()) < 10_000)
  await waitForState(p, pushId, 'delivered')

  await device.publishAsync(`devices/${id}/ack`, JSON.stringify({ id: 1 }), { qos: 1 })
  await waitForState(p, pushId, 'acked')
  const r = await receipts(p, pushId)
  assert.deepEqual(r.devices, [{ deviceId: id, state: 'acked', id: 1, at: r.devices[0]?.at }])

  const second = await push(p, { deviceId: id, data: 'two' })
  assert.ok(await eventually(async () => got.length === 2))
  assert.equal((got[1] as Downlink).id, 2)
  await waitForState(p, second, 'delivered')
  const history = await p.api('GET', `/v1/admin/devices/${id}/messages`)
  assert.deepEqual(history.body.messages.map((m: { id: number, data: unknown }) => [m.id, m.data]), [[1, { cmd: 'reboot' }], [2, 'two']])
})

test('embedded mode: QoS 0 pushes go out as QoS 0 and count as delivered once written, to a device and as a broadcast', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const id = `q0-${uid()}`
  const { token } = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.subscribeAsync([`devices/${id}/down`, 'broadcast/all'], { qos: 1 })
  const qos: number[] = []
  device.on('message', (_topic, _payload, packet) => { qos.push(packet.qos) })
  const direct = await push(p, { deviceId: id, data: 'd', qos: 0 })
  await waitForState(p, direct, 'delivered')
  const all = await push(p, { all: true, data: 'b', qos: 0 })
  await waitForState(p, all, 'delivered')
  assert.deepEqual(qos, [0, 0])
})

test('bad push requests get 400 with a stable code, and an unknown push or device 404', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_PUSH_MAX_DATA_BYTES: '1024', PUSHLINE_PUSH_MAX_TTL_SECONDS: '3600' } })
  const id = `bad-${uid()}`
  await p.createDevice(id)
  const cases: Array<[string, unknown, number, string]> = [
    ['two targets', { deviceId: id, group: 'g', data: 1 }, 400, 'IOT_ERR_PUSH_TARGET'],
    ['no target', { data: 1 }, 400, 'IOT_ERR_PUSH_TARGET'],
    ['an empty list', { deviceIds: [], data: 1 }, 400, 'IOT_ERR_PUSH_TARGET'],
    ['all: false', { all: false, data: 1 }, 400, 'IOT_ERR_PUSH_TARGET'],
    ['too many ids', { deviceIds: Array.from({ length: 100_001 }, (_, i) => `d${i}`), data: 1 }, 400, 'IOT_ERR_PUSH_TARGET'],
    ['invalid JSON', `{"deviceId": "${id}", "data": `, 400, 'IOT_ERR_INVALID_JSON'],
    ['no data', { deviceId: id }, 400, 'IOT_ERR_VALIDATION'],
    ['data over the limit', { deviceId: id, data: 'x'.repeat(2000) }, 400, 'IOT_ERR_PUSH_DATA_TOO_LARGE'],
    ['ttl 0', { deviceId: id, data: 1, ttlSeconds: 0 }, 400, 'IOT_ERR_PUSH_TTL'],
    ['ttl over the limit', { deviceId: id, data: 1, ttlSeconds: 3601 }, 400, 'IOT_ERR_PUSH_TTL'],
    ['qos 2', { deviceId: id, data: 1, qos: 2 }, 400, 'IOT_ERR_VALIDATION'],
    ['a topic field', { deviceId: id, data: 1, topic: 'devices/x/down' }, 400, 'IOT_ERR_VALIDATION'],
    ['an unknown device', { deviceId: `nobody-${uid()}`, data: 1 }, 404, 'IOT_ERR_DEVICE_NOT_FOUND']
  ]
  for (const [what, body, status, code] of cases) {
    const res = await p.api('POST', '/v1/admin/push', body)
    assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`)
    assert.equal(res.body.error, code, what)
  }
  assert.equal((await p.api('GET', '/v1/admin/push/p-nothing')).body.error, 'IOT_ERR_PUSH_NOT_FOUND')
  assert.equal((await p.api('POST', '/v1/admin/push', { deviceId: id, data: 1 }, {})).status, 401)
  assert.equal((await p.api('GET', '/v1/devices/me/messages', undefined, { authorization: 'Bearer not-a-token' })).status, 401)
})

test('group and broadcast pushes beyond PUSHLINE_PUSH_MAX_LIVE_BROADCASTS get 429 and leave nothing behind; targeted pushes still go', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_PUSH_MAX_LIVE_BROADCASTS: '2' } })
  const id = `live-${uid()}`
  await p.createDevice(id, ['hall'])
  for (const body of [{ all: true, data: 1, ttlSeconds: 60 }, { group: 'hall', data: 2, ttlSeconds: 60 }]) {
    assert.equal((await p.api('POST', '/v1/admin/push', body)).status, 202)
  }
  const before = (await p.api('GET', '/v1/admin/push?limit=100')).body.pushes.length as number
  for (const body of [{ all: true, data: 3 }, { group: 'hall', data: 4, ttlSeconds: 1 }]) {
    const res = await p.api('POST', '/v1/admin/push', body)
    assert.equal(res.status, 429, JSON.stringify(res.body))
    assert.equal(res.body.error, 'IOT_ERR_PUSH_LIVE_LIMIT')
  }
  assert.equal((await p.api('GET', '/v1/admin/push?limit=100')).body.pushes.length, before, 'a refused push is not recorded')
  assert.equal((await p.api('POST', '/v1/admin/push', { deviceId: id, data: 5 })).status, 202)
})

test('across nodes: a push to a device online on another node is delivered, then acked', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const id = `x-${uid()}`
  const { token } = await cluster.api.provision(id)
  const device = await connectDevice(t, (cluster.nodes[1] as { mqttUrl: string }).mqttUrl, id, token)
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  const got = collect(device)
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.online === true))

  const pushId = await push(cluster.api, { deviceId: id, data: { n: 1 }, ttlSeconds: 60 })
  await waitForState(cluster.api, pushId, 'delivered')
  assert.deepEqual(got.map((m) => [m.id, m.pushId, m.data]), [[1, pushId, { n: 1 }]])
  await device.publishAsync(`devices/${id}/ack`, JSON.stringify({ id: 1 }), { qos: 1 })
  await waitForState(cluster.api, pushId, 'acked')
})

test('across nodes: an offline device\'s pushes stay queued, arrive in id order when it reconnects within ttl, and expire beyond it', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const id = `off-${uid()}`
  const { token } = await cluster.api.provision(id)
  const first = await connectDevice(t, (cluster.nodes[0] as { mqttUrl: string }).mqttUrl, id, token)
  await first.endAsync()

  const kept = [await push(cluster.api, { deviceId: id, data: 'a', ttlSeconds: 60 }), await push(cluster.api, { deviceId: id, data: 'b', ttlSeconds: 60 })]
  const short = await push(cluster.api, { deviceId: id, data: 'c', ttlSeconds: 1 })
  // The API set the short push's expiry before it answered: at most 1 s after this.
  const expiredBy = Date.now() + 1000
  for (const pushId of [...kept, short]) assert.equal((await receipts(cluster.api, pushId)).counts.queued, 1)
  assert.ok(await eventually(() => Date.now() > expiredBy, 30_000, 50))

  const back = await connectDevice(t, (cluster.nodes[1] as { mqttUrl: string }).mqttUrl, id, token)
  const got = collect(back)
  for (const pushId of kept) await waitForState(cluster.api, pushId, 'delivered')
  await waitForState(cluster.api, short, 'expired')
  assert.deepEqual(got.map((m) => [m.id, m.data]), [[1, 'a'], [2, 'b']])
})

test('a device that was offline pulls its missed downlinks in id order with no gaps, and they count as delivered', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 500 })
  const id = `pull-${uid()}`
  const { token } = await cluster.api.provision(id)
  const pushIds: string[] = []
  for (let i = 0; i < 7; i++) pushIds.push(await push(cluster.api, { deviceId: id, data: { i }, ttlSeconds: 60 }))
  const pull = async (after: number, limit: number): Promise<Array<{ id: number, pushId: string, data: { i: number } }>> => {
    const res = await cluster.api.api('GET', `/v1/devices/me/messages?after=${after}&limit=${limit}`, undefined, { authorization: `Bearer ${token}` })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    return res.body.messages
  }
  const page1 = await pull(0, 4)
  const page2 = await pull((page1[page1.length - 1] as { id: number }).id, 100)
  const all = [...page1, ...page2]
  assert.deepEqual(all.map((m) => m.id), [1, 2, 3, 4, 5, 6, 7])
  assert.deepEqual(all.map((m) => m.data.i), [0, 1, 2, 3, 4, 5, 6])
  assert.deepEqual(all.map((m) => m.pushId), pushIds)
  for (const pushId of pushIds) assert.equal((await receipts(cluster.api, pushId)).counts.delivered, 1)
  const window = await cluster.api.api('GET', `/v1/admin/devices/${id}/messages?after=2&before=6&limit=10`)
  assert.deepEqual(window.body.messages.map((m: { id: number }) => m.id), [3, 4, 5])
})

test('a group push reaches exactly the group\'s members', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const group = `g-${uid()}`
  const devices = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const id = `grp-${uid()}-${i}`
    const member = i % 2 === 0
    const { token } = await cluster.api.provision(id, member ? [group] : [])
    const c = await connectDevice(t, (cluster.nodes[i % 2] as { mqttUrl: string }).mqttUrl, id, token)
    await c.subscribeAsync(member ? [`broadcast/groups/${group}`, 'broadcast/all'] : ['broadcast/all'], { qos: 1 })
    return { id, member, got: collect(c) }
  }))
  const pushId = await push(cluster.api, { group, data: { to: 'group' }, ttlSeconds: 60 })
  await waitForState(cluster.api, pushId, 'delivered', 3)
  // Marker: a broadcast sent after the group push reaches every device after it would have.
  const marker = await push(cluster.api, { all: true, data: 'marker', ttlSeconds: 60 })
  assert.ok(await eventually(() => devices.every((d) => d.got.some((m) => m.pushId === marker))), 'the marker reached every device')
  for (const d of devices) {
    d.got.splice(d.got.findIndex((m) => m.pushId === marker), 1)
    assert.deepEqual(d.got.map((m) => [m.topic, m.id, m.pushId, m.data]), d.member ? [[`broadcast/groups/${group}`, pushId, pushId, { to: 'group' }]] : [], d.id)
  }
  const r = await receipts(cluster.api, pushId)
  assert.deepEqual(r.devices, [])
  assert.equal(r.counts.sent, 0)
})

test('application acks of group and broadcast pushes are counted once per device, across nodes', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const group = `ga-${uid()}`
  const devices = await Promise.all(Array.from({ length: 4 }, async (_, i) => {
    const id = `ack-${uid()}-${i}`
    const { token } = await cluster.api.provision(id, [group])
    const c = await connectDevice(t, (cluster.nodes[i % 2] as { mqttUrl: string }).mqttUrl, id, token)
    await c.subscribeAsync([`broadcast/groups/${group}`], { qos: 1 })
    return { id, c, got: collect(c) }
  }))
  const pushId = await push(cluster.api, { group, data: { please: 'ack' }, ttlSeconds: 60 })
  await waitForState(cluster.api, pushId, 'delivered', 4)
  // Three devices ack, one of them three times, one with a push id that does not exist.
  for (const d of devices.slice(0, 3)) await d.c.publishAsync(`devices/${d.id}/ack`, JSON.stringify({ id: pushId }), { qos: 1 })
  const first = devices[0] as { id: string, c: MqttClient }
  await first.c.publishAsync(`devices/${first.id}/ack`, JSON.stringify({ id: pushId }), { qos: 1 })
  await first.c.publishAsync(`devices/${first.id}/ack`, JSON.stringify({ id: pushId }), { qos: 1 })
  await first.c.publishAsync(`devices/${first.id}/ack`, JSON.stringify({ id: 'p-unknown' }), { qos: 1 })
  await waitForState(cluster.api, pushId, 'acked', 3)
  // A repeated ack flushed later must not count again; the marker, an ack for a later push on the same
  // connection, is counted after it.
  const later = await push(cluster.api, { group, data: { marker: true }, ttlSeconds: 60 })
  await waitForState(cluster.api, later, 'delivered', 4)
  await first.c.publishAsync(`devices/${first.id}/ack`, JSON.stringify({ id: pushId }), { qos: 1 })
  await first.c.publishAsync(`devices/${first.id}/ack`, JSON.stringify({ id: later }), { qos: 1 })
  await waitForState(cluster.api, later, 'acked', 1)
  assert.deepEqual((await receipts(cluster.api, pushId)).counts, { queued: 0, sent: 0, delivered: 1, acked: 3, expired: 0, failed: 0 })
})

test('a node SIGKILLed while devices ack a group push: every ack it had acknowledged is counted in Redis', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 500 })
  const node = cluster.nodes[0] as TestCluster['nodes'][number]
  const group = `gk-${uid()}`
  const devices = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const id = `gk-${uid()}-${i}`
    const { token } = await cluster.api.provision(id, [group])
    const c = await connectDevice(t, node.mqttUrl, id, token)
    await c.subscribeAsync([`broadcast/groups/${group}`], { qos: 1 })
    return { id, c }
  }))
  const pushId = await push(cluster.api, { group, data: { please: 'ack' }, ttlSeconds: 60 })
  await waitForState(cluster.api, pushId, 'delivered', devices.length)
  // All devices ack at once; the node is killed at the first PUBACK of an ack, before its next flush if the PUBACK
  // did not wait for one.
  const acknowledged = new Set<string>()
  const firstPuback = new Promise<void>((resolve) => {
    for (const d of devices) {
      d.c.publishAsync(`devices/${d.id}/ack`, JSON.stringify({ id: pushId }), { qos: 1 }).then(() => {
        if (acknowledged.size === 0) node.child.kill('SIGKILL')
        acknowledged.add(d.id)
        resolve()
      }, () => {})
    }
  })
  await bounded('the first PUBACK of an ack', firstPuback)
  await bounded('the killed node to exit', node.exited)
  const ackers = new Set(await connectRedis(t).smembers(`${cluster.prefix}push:${pushId}:ackers`))
  for (const id of acknowledged) assert.ok(ackers.has(id), `${id}'s ack was acknowledged and is not counted (${ackers.size} of ${acknowledged.size} are)`)
})

test('a broadcast reaches all of 2,000 devices spread over 3 nodes, and the counts say so', { timeout: 300_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: 1000 })
  const n = 2000
  const tag = uid()
  const ids = Array.from({ length: n }, (_, i) => `bc-${tag}-${i}`)
  const tokens = new Map<string, string>()
  for (let i = 0; i < n; i += 100) {
    await Promise.all(ids.slice(i, i + 100).map(async (id) => { tokens.set(id, (await cluster.api.provision(id)).token) }))
  }
  let received = 0
  const clients: mqtt.MqttClient[] = []
  t.after(async () => { await Promise.all(clients.map((c) => c.endAsync(true))) })
  for (let i = 0; i < n; i += 200) {
    await Promise.all(ids.slice(i, i + 200).map(async (id, j) => {
      const node = cluster.nodes[(i + j) % 3] as { mqttUrl: string }
      const c = await mqtt.connectAsync(node.mqttUrl, { clientId: id, username: id, password: tokens.get(id), reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4 })
      clients.push(c)
      c.on('message', () => { received++ })
      await c.subscribeAsync('broadcast/all', { qos: 1 })
    }))
  }
  const started = Date.now()
  const pushId = await push(cluster.api, { all: true, data: { hello: 'everyone' }, ttlSeconds: 60 })
  assert.ok(await eventually(async () => received === n, 240_000), `received ${received} of ${n}`)
  const allReceived = Date.now() - started
  await waitForState(cluster.api, pushId, 'delivered', n, 240_000)
  const counted = Date.now() - started
  t.diagnostic(`broadcast to ${n} devices on 3 nodes: all received in ${allReceived} ms, counted delivered in ${counted} ms`)
  const r = await receipts(cluster.api, pushId)
  assert.deepEqual(r.counts, { queued: 0, sent: 0, delivered: n, acked: 0, expired: 0, failed: 0 })
  assert.equal(received, n)
})

test('a push to a list of 10,000 ids with some unknown ones runs as a job and reports every id', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const store = createRedisDeviceStore({ redis: connectRedis(t), prefix: cluster.prefix })
  const tag = uid()
  const known = Array.from({ length: 9_900 }, (_, i) => `b-${tag}-${String(i).padStart(5, '0')}`)
  const unknown = [...Array.from({ length: 98 }, (_, i) => `nobody-${tag}-${i}`), 'not a device id!', 'x'.repeat(65)]
  for (let i = 0; i < known.length; i += 500) {
    await Promise.all(known.slice(i, i + 500).map((id) => store.create({ id, groups: [], metadata: {}, secretHash: 'unused', enabled: true, createdAt: 1, updatedAt: 1 })))
  }
  // Two of them online, on different nodes.
  const online = [known[0] as string, known[5000] as string]
  const got = await Promise.all(online.map(async (id, i) => {
    const rotated = await cluster.api.api('POST', `/v1/admin/devices/${id}/secret`)
    const token = await cluster.api.token(id, rotated.body.secret as string)
    const c = await connectDevice(t, (cluster.nodes[i] as { mqttUrl: string }).mqttUrl, id, token)
    return collect(c)
  }))
  assert.ok(await eventually(async () => (await cluster.stats()).online === 2))

  const ids = [...known, ...unknown].sort(() => Math.random() - 0.5)
  const started = Date.now()
  const pushId = await push(cluster.api, { deviceIds: ids, data: { batch: true }, ttlSeconds: 600 })
  const accepted = Date.now() - started
  let r = await receipts(cluster.api, pushId)
  assert.ok(await eventually(async () => { r = await receipts(cluster.api, pushId); return r.progress.done }, 60_000, 200), `job not done: ${JSON.stringify(r.progress)}`)
  const done = Date.now() - started
  t.diagnostic(`10,000-id push: 202 after ${accepted} ms, job done after ${done} ms`)
  assert.deepEqual(r.progress, { processed: 10_000, total: 10_000, done: true })
  await waitForState(cluster.api, pushId, 'delivered', 2)
  r = await receipts(cluster.api, pushId)
  assert.deepEqual(r.counts, { queued: 9_898, sent: 0, delivered: 2, acked: 0, expired: 0, failed: 100 })
  for (const g of got) assert.equal(g.length, 1)

  const states = new Map<string, { state: string, id?: number, reason?: string }>()
  let after: string | undefined
  do {
    const page = await receipts(cluster.api, pushId, `?limit=1000${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`)
    for (const d of page.devices) states.set(d.deviceId, d)
    after = page.next
  } while (after !== undefined)
  assert.equal(states.size, 10_000)
  for (const id of unknown) assert.deepEqual([states.get(id)?.state, states.get(id)?.reason], ['failed', 'unknown device'], id)
  for (const id of known) {
    const s = states.get(id)
    assert.equal(s?.id, 1, id)
    assert.equal(s?.state, online.includes(id) ? 'delivered' : 'queued', id)
  }
})

test('a device with a persistent session gets its push once, and nothing of it is left in the session store', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const id = `persist-${uid()}`
  const { token } = await cluster.api.provision(id)
  const node = cluster.nodes[0] as { mqttUrl: string, nodeId: string }
  const device = await connectDevice(t, node.mqttUrl, id, token, { clean: false })
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  const got = collect(device)
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.online === true))
  const pushId = await push(cluster.api, { deviceId: id, data: 'once', ttlSeconds: 60 })
  await waitForState(cluster.api, pushId, 'delivered')
  await device.endAsync()

  const back = await connectDevice(t, (cluster.nodes[1] as { mqttUrl: string }).mqttUrl, id, token, { clean: false })
  const again = collect(back)
  // A redelivery from the session would come right after CONNACK, before a push sent now.
  const marker = await push(cluster.api, { deviceId: id, data: 'marker', ttlSeconds: 60 })
  await waitForState(cluster.api, marker, 'delivered')
  assert.deepEqual(got.map((m) => m.data), ['once'])
  // Only the marker (a push sent while the connect's catch-up runs may come twice, as QoS 1 allows).
  assert.deepEqual([...new Set(again.map((m) => m.data))], ['marker'])
  const redis = connectRedis(t)
  // aedes-persistence-redis's keys live under the cluster's prefix too.
  assert.deepEqual(await redis.keys(`${cluster.prefix}aedes:packet:${node.nodeId}:direct*`), [])
  assert.ok(await redis.exists(`${cluster.prefix}aedes:client:${id}`) === 1, 'the persistent session is stored under the prefix')
  assert.equal(await redis.llen(`${cluster.prefix}aedes:outgoing:${id}`), 0)
})

test('application acks pass the uplink rate limit like uplinks: held back, none dropped', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_UPLINK_RATE_PER_SECOND: '20', PUSHLINE_UPLINK_RATE_BURST: '5' } })
  const id = `ackrate-${uid()}`
  const { token } = await p.provision(id, ['yard'])
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.subscribeAsync('broadcast/groups/yard', { qos: 1 })
  const got = collect(device)
  const pushId = await push(p, { group: 'yard', data: 'ack me', ttlSeconds: 60 })
  assert.ok(await eventually(async () => got.length === 1, 10_000), 'group push received')
  // 40 acks at once over a burst of 5: at least 35 wait for the bucket; every one is PUBACKed.
  await Promise.all(Array.from({ length: 40 }, () => device.publishAsync(`devices/${id}/ack`, JSON.stringify({ id: pushId }), { qos: 1 })))
  assert.ok(await p.metric('pushline_uplinks_throttled_total') >= 35, 'acks were held back by the rate limit')
  await waitForState(p, pushId, 'acked', 1)
})

test('an application ack counts only for a push the device received: not for another group\'s push, not for another device\'s push', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const yard = `yard-${uid()}`
  const inYard = `in-yard-${uid()}`
  const inHall = `in-hall-${uid()}`
  const other = `other-${uid()}`
  const devices = new Map<string, { c: MqttClient, got: Downlink[] }>()
  for (const [id, group] of [[inYard, yard], [inHall, 'hall'], [other, yard]] as const) {
    const { token } = await p.provision(id, [group])
    const c = await connectDevice(t, p.mqttUrl, id, token)
    await c.subscribeAsync([`broadcast/groups/${group}`, `devices/${id}/down`], { qos: 1 })
    devices.set(id, { c, got: collect(c) })
  }
  const device = (id: string): { c: MqttClient, got: Downlink[] } => devices.get(id) as { c: MqttClient, got: Downlink[] }
  const ack = async (from: string, id: number | string): Promise<void> => { await device(from).c.publishAsync(`devices/${from}/ack`, JSON.stringify({ id }), { qos: 1 }) }

  const groupPush = await push(p, { group: yard, data: 'yard only', ttlSeconds: 60 })
  const targeted = await push(p, { deviceId: other, data: 'for other only', ttlSeconds: 60 })
  await waitForState(p, groupPush, 'delivered', 2)
  await waitForState(p, targeted, 'delivered', 1)
  // Marker: a push to the hall group, sent after both, comes after anything of theirs the hall device would have got
  // (a group push: no message id in its history that the acks below could name).
  const hallMarker = await push(p, { group: 'hall', data: 'marker', ttlSeconds: 60 })
  await waitUntil('the marker push to the hall device', () => device(inHall).got.some((m) => m.pushId === hallMarker))
  assert.deepEqual(device(inHall).got.map((m) => m.pushId), [hallMarker], 'the hall device got neither the yard push nor the other device\'s')

  // The hall device acks the yard push and the other device's push, by push id and by the other's message id.
  await ack(inHall, groupPush)
  await ack(inHall, targeted)
  await ack(inHall, (device(other).got.find((m) => m.pushId === targeted) as Downlink).id)
  // Then a yard device acks the yard push: once its ack is counted (delivered goes to 1), the hall device's,
  // sent before it, have been handled too.
  await ack(inYard, groupPush)
  await waitForState(p, groupPush, 'delivered', 1)
  assert.deepEqual((await receipts(p, groupPush)).counts, { queued: 0, sent: 0, delivered: 1, acked: 1, expired: 0, failed: 0 })
  assert.deepEqual((await receipts(p, targeted)).devices.map((r) => [r.deviceId, r.state]), [[other, 'delivered']])
  assert.equal((await receipts(p, targeted)).counts.acked, 0)
})
