import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { eventually, startTestCluster } from '../helpers/cluster.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, type TestPlatform } from '../helpers/platform.ts'

// Push end to end: the API accepts a push, broker nodes write it to devices, receipts follow PUBACKs and
// application acks, offline devices catch up on reconnect or pull their history.

const uid = (): string => randomUUID().slice(0, 8)

interface Downlink { topic: string, id: number | string, pushId: string, sentAt: number, data: unknown }

function collect (c: MqttClient): Downlink[] {
  const got: Downlink[] = []
  c.on('message', (topic, payload) => { got.push({ topic, ...(JSON.parse(payload.toString()) as Omit<Downlink, 'topic'>) }) })
  return got
}

async function receipts (api: TestPlatform, pushId: string, query = ''): Promise<{ counts: Record<string, number>, devices: Array<{ deviceId: string, state: string, id?: number, reason?: string }>, progress: { processed: number, total?: number, done: boolean }, next?: string }> {
  const res = await api.api('GET', `/v1/admin/push/${pushId}${query}`)
  assert.equal(res.status, 200, JSON.stringify(res.body))
  return res.body
}

async function waitForState (api: TestPlatform, pushId: string, state: string, n = 1, ms = 10_000): Promise<void> {
  let last: unknown
  const ok = await eventually(async () => { const r = await receipts(api, pushId); last = r.counts; return r.counts[state] === n }, ms)
  assert.ok(ok, `expected ${n} ${state}, counts ${JSON.stringify(last)}`)
}

async function push (api: TestPlatform, body: unknown): Promise<string> {
  const res = await api.api('POST', '/v1/admin/push', body)
  assert.equal(res.status, 202, JSON.stringify(res.body))
  return res.body.pushId as string
}

test('embedded mode: a push reaches an online device, PUBACK makes it delivered and the device\'s ack makes it acked', async (t) => {
  const p = await startTestPlatform(t)
  const id = `emb-${uid()}`
  const { token } = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  const got = collect(device)

  const pushId = await push(p, { deviceId: id, data: { cmd: 'reboot' }, qos: 1, ttlSeconds: 60 })
  assert.ok(await eventually(async () => got.length === 1, 5000), 'downlink not received')
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
  assert.deepEqual(r.devices, [{ deviceId: id, state: 'acked', id: 1, at: (r.devices[0] as { at: number } & Record<string, unknown>).at }])

  const second = await push(p, { deviceId: id, data: 'two' })
  assert.ok(await eventually(async () => got.length === 2, 5000))
  assert.equal((got[1] as Downlink).id, 2)
  await waitForState(p, second, 'delivered')
  const history = await p.api('GET', `/v1/admin/devices/${id}/messages`)
  assert.deepEqual(history.body.messages.map((m: { id: number, data: unknown }) => [m.id, m.data]), [[1, { cmd: 'reboot' }], [2, 'two']])
})

test('bad push requests get 400 with a stable code, and an unknown push or device 404', async (t) => {
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

test('across nodes: a push to a device online on another node is delivered, then acked', async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const id = `x-${uid()}`
  const { token } = await cluster.api.provision(id)
  const device = await connectDevice(t, (cluster.nodes[1] as { mqttUrl: string }).mqttUrl, id, token)
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  const got = collect(device)
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.online === true, 5000))

  const pushId = await push(cluster.api, { deviceId: id, data: { n: 1 }, ttlSeconds: 60 })
  await waitForState(cluster.api, pushId, 'delivered')
  assert.deepEqual(got.map((m) => [m.id, m.pushId, m.data]), [[1, pushId, { n: 1 }]])
  await device.publishAsync(`devices/${id}/ack`, JSON.stringify({ id: 1 }), { qos: 1 })
  await waitForState(cluster.api, pushId, 'acked')
})

test('across nodes: an offline device\'s pushes stay queued, arrive in id order when it reconnects within ttl, and expire beyond it', async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const id = `off-${uid()}`
  const { token } = await cluster.api.provision(id)
  const first = await connectDevice(t, (cluster.nodes[0] as { mqttUrl: string }).mqttUrl, id, token)
  await first.endAsync()

  const kept = [await push(cluster.api, { deviceId: id, data: 'a', ttlSeconds: 60 }), await push(cluster.api, { deviceId: id, data: 'b', ttlSeconds: 60 })]
  const short = await push(cluster.api, { deviceId: id, data: 'c', ttlSeconds: 1 })
  for (const pushId of [...kept, short]) assert.equal((await receipts(cluster.api, pushId)).counts.queued, 1)
  await new Promise((resolve) => setTimeout(resolve, 1500))

  const back = await connectDevice(t, (cluster.nodes[1] as { mqttUrl: string }).mqttUrl, id, token)
  const got = collect(back)
  for (const pushId of kept) await waitForState(cluster.api, pushId, 'delivered')
  await waitForState(cluster.api, short, 'expired')
  assert.deepEqual(got.map((m) => [m.id, m.data]), [[1, 'a'], [2, 'b']])
})

test('a device that was offline pulls its missed downlinks in id order with no gaps, and they count as delivered', async (t) => {
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
