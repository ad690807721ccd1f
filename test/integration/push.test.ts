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
