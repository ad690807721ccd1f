import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'

// The server side of the dashboard: its static files, the recent pushes list and the traffic summary
// (embedded mode; the browser test runs the same against a cluster, the store contract suites cover Redis).

const uid = (): string => randomUUID().slice(0, 8)

test('the dashboard page, script and style sheet are served without a key and load nothing from elsewhere', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const expected = { '/dashboard': 'text/html', '/dashboard/app.js': 'text/javascript', '/dashboard/style.css': 'text/css' }
  for (const [path, type] of Object.entries(expected)) {
    const res = await fetch(p.httpUrl + path)
    assert.equal(res.status, 200, path)
    assert.ok(res.headers.get('content-type')?.startsWith(type), `${path}: ${res.headers.get('content-type') ?? ''}`)
    const body = await res.text()
    assert.ok(body.length > 100, path)
    assert.doesNotMatch(body, /(src|href)=["']?(https?:)?\/\//, `${path} refers to another origin`)
  }
  const html = await (await fetch(`${p.httpUrl}/dashboard`)).text()
  assert.match(html, /src="\/dashboard\/app\.js"/)
  assert.match(html, /href="\/dashboard\/style\.css"/)
})

test('the recent pushes list needs the admin key and refuses a bad limit', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  assert.equal((await p.api('GET', '/v1/admin/push', undefined, {})).status, 401)
  const wrong = await p.api('GET', '/v1/admin/push', undefined, { authorization: 'Bearer wrong-key-000000000000' })
  assert.equal(wrong.status, 403)
  assert.equal(wrong.body.error, 'IOT_ERR_FORBIDDEN')
  for (const limit of ['0', '101', 'many']) {
    const res = await p.api('GET', `/v1/admin/push?limit=${limit}`)
    assert.equal(res.status, 400, limit)
    assert.equal(res.body.error, 'IOT_ERR_VALIDATION', limit)
  }
  assert.equal((await p.api('GET', '/v1/admin/metrics/summary', undefined, {})).status, 401)
  assert.equal((await p.api('GET', '/v1/admin/metrics/summary', undefined, { authorization: 'Bearer wrong-key-000000000000' })).status, 403)
})

test('recent pushes list the latest first with their targets and receipt counts', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const id = `rp-${uid()}`
  const group = `g${uid()}`
  const { token } = await p.provision(id, [group])
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.subscribeAsync(`broadcast/groups/${group}`, { qos: 1 })
  const pushIds: string[] = []
  for (const body of [{ deviceId: id }, { group }, { deviceIds: [id, `nobody-${uid()}`] }, { all: true }]) {
    const res = await p.api('POST', '/v1/admin/push', { ...body, data: { n: pushIds.length } })
    assert.equal(res.status, 202, JSON.stringify(res.body))
    pushIds.push(res.body.pushId as string)
  }
  const list = async (limit: number): Promise<Array<{ pushId: string, target: Record<string, unknown>, counts: Record<string, number>, progress: { done: boolean } }>> => {
    const res = await p.api('GET', `/v1/admin/push?limit=${limit}`)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    return res.body.pushes
  }
  const two = await list(2)
  assert.deepEqual(two.map((x) => x.pushId), [pushIds[3], pushIds[2]])
  assert.ok(await eventually(async () => {
    const all = await list(20)
    const byId = new Map(all.map((x) => [x.pushId, x]))
    return all.length === 4 && byId.get(pushIds[0] as string)?.counts.delivered === 1 &&
      byId.get(pushIds[1] as string)?.counts.delivered === 1 &&
      byId.get(pushIds[2] as string)?.counts.failed === 1 && byId.get(pushIds[2] as string)?.progress.done === true
  }, 30_000), JSON.stringify(await list(20)))
  const all = await list(20)
  assert.deepEqual(all.map((x) => x.pushId), [...pushIds].reverse())
  assert.deepEqual(all.map((x) => x.target.kind), ['all', 'devices', 'group', 'device'])
  assert.equal(all[3]?.target.deviceId, id)
})

test('the traffic summary counts a node\'s uplinks, downlinks and spool depth from its heartbeat', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_HEARTBEAT_MS: '200' } })
  const id = `tr-${uid()}`
  const { token } = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  for (let i = 0; i < 5; i++) await device.publishAsync(`devices/${id}/telemetry`, '{"t":1}', { qos: 1 })
  assert.equal((await p.api('POST', '/v1/admin/push', { deviceId: id, data: 1 })).status, 202)
  let last: unknown
  assert.ok(await eventually(async () => {
    const res = await p.api('GET', '/v1/admin/metrics/summary')
    last = res.body
    const node = res.body.nodes[0]
    // Embedded mode has no Kafka: every uplink waits in the spool.
    return res.status === 200 && res.body.nodes.length === 1 && node.traffic?.uplinks === 5 && node.traffic?.downlinks === 1 &&
      node.traffic?.kafkaRecords === 0 && node.traffic?.spoolDepth === 5 && res.body.totals.uplinks === 5
  }, 30_000), JSON.stringify(last))
})

test('the OpenAPI document describes the API routes the dashboard uses, not its static files', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const doc = await (await fetch(`${p.httpUrl}/docs/json`)).json() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }
  assert.ok(doc.paths['/v1/admin/push']?.get?.responses['200'])
  assert.ok(doc.paths['/v1/admin/metrics/summary']?.get?.responses['200'])
  assert.equal(doc.paths['/dashboard'], undefined)
  assert.equal((await fetch(`${p.httpUrl}/dashboard`)).status, 200)
})
