import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, type TestPlatform } from '../helpers/platform.ts'
import { makeCertificates } from '../helpers/tls.ts'

// Who is online (GET /v1/admin/devices?online=true) and the operator's kick (POST /v1/admin/devices/{id}/kick),
// embedded and on a cluster of two broker processes and an API process sharing Redis.

type Api = TestPlatform['api']

interface OnlineDevice { id: string, nodeId: string, connectedAt: number, address: string | null, transport: string | null }

/** Every page of the online listing, and how many pages it took. */
async function listAll (api: Api, query: string, limit: number): Promise<{ devices: OnlineDevice[], pages: number }> {
  const devices: OnlineDevice[] = []
  let after: string | undefined
  let pages = 0
  do {
    const res = await api('GET', `/v1/admin/devices?online=true&limit=${limit}${query}${after === undefined ? '' : `&after=${after}`}`)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.ok(res.body.devices.length <= limit)
    devices.push(...res.body.devices as OnlineDevice[])
    after = res.body.next
    pages++
  } while (after !== undefined)
  return { devices, pages }
}

const localPort = (c: MqttClient): number => (c.stream as unknown as Socket).localPort ?? -1
const closed = (c: MqttClient): Promise<void> => new Promise((resolve) => { if (!c.connected) resolve(); else c.once('close', () => resolve()) })

test('embedded: the online listing pages through every online device with its node, time, address and transport (tcp, tls, ws, wss), and adds up to the stats', { timeout: 60_000 }, async (t) => {
  const certs = await makeCertificates(t)
  const p = await startTestPlatform(t, { env: { PUSHLINE_TLS_CERT_FILE: certs.certFile, PUSHLINE_TLS_KEY_FILE: certs.keyFile, PUSHLINE_MQTTS_PORT: '0', PUSHLINE_WSS_PORT: '0' } })
  const tag = randomUUID().slice(0, 6)
  const urls = {
    tcp: p.mqttUrl,
    tls: `mqtts://127.0.0.1:${p.mqttsPort ?? 0}`,
    ws: p.wsUrl,
    wss: `wss://127.0.0.1:${p.wssPort ?? 0}/mqtt`
  }
  const plan = Object.keys(urls).flatMap((transport, i) => Array.from({ length: 2 + i }, (_, j) => ({ id: `on-${tag}-${transport}-${j}`, transport: transport as keyof typeof urls })))
  const before = Date.now()
  const clients = new Map<string, MqttClient>()
  for (const d of plan) {
    const { token } = await p.provision(d.id)
    clients.set(d.id, await connectDevice(t, urls[d.transport], d.id, token, { ca: certs.ca }))
  }
  // Registered but never connected: not listed.
  await p.createDevice(`on-${tag}-offline`)
  assert.ok(await eventually(async () => (await p.api('GET', '/v1/admin/stats')).body.online === plan.length, 10_000))

  const { devices, pages } = await listAll(p.api, '', 3)
  assert.equal(pages, Math.ceil(plan.length / 3))
  assert.deepEqual(devices.map((d) => d.id), plan.map((d) => d.id).sort(), 'each online device once, in id order')
  assert.equal(devices.length, (await p.api('GET', '/v1/admin/stats')).body.online)
  for (const d of plan) {
    const listed = devices.find((x) => x.id === d.id) as OnlineDevice
    assert.equal(listed.transport, d.transport, d.id)
    assert.equal(listed.nodeId, p.config.nodeId)
    assert.ok(listed.connectedAt >= before && listed.connectedAt <= Date.now())
    assert.match(listed.address ?? '', /^127\.0\.0\.1:\d+$/)
    if (d.transport === 'tcp' || d.transport === 'tls') assert.equal(listed.address, `127.0.0.1:${localPort(clients.get(d.id) as MqttClient)}`, 'the client\'s own port')
  }
  const byNode = await listAll(p.api, `&node=${p.config.nodeId}`, 100)
  assert.equal(byNode.devices.length, plan.length)
  assert.deepEqual((await p.api('GET', '/v1/admin/devices?online=true&node=some-other-node')).body, { devices: [] })

  // A device that goes offline leaves the listing.
  const leaving = plan[0] as typeof plan[number]
  await clients.get(leaving.id)?.endAsync()
  assert.ok(await eventually(async () => !(await listAll(p.api, '', 100)).devices.some((d) => d.id === leaving.id), 10_000))
  assert.equal((await listAll(p.api, '', 100)).devices.length, (await p.api('GET', '/v1/admin/stats')).body.online)

  // Without online=true the route lists registered devices as before, offline ones included.
  const registered = (await p.api('GET', `/v1/admin/devices?limit=1000&after=on-${tag}-`)).body.devices as Array<{ id: string, enabled: boolean }>
  assert.ok(registered.some((d) => d.id === `on-${tag}-offline` && d.enabled))
})

test('bad queries of the online listing get 400 IOT_ERR_VALIDATION naming the problem, and no key gets 401', { timeout: 30_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const cases: Array<[string, RegExp]> = [
    ['online=false', /online=false is not supported/],
    ['online=maybe', /online/],
    ['online=true&limit=0', /limit/],
    ['online=true&limit=1001', /limit/],
    ['online=true&limit=ten', /limit/],
    ['online=true&after=not%20an%20id', /after/],
    ['online=true&node=not%20a%20node', /node/],
    ['online=true&group=g1', /group cannot be combined with online=true/],
    ['node=n1', /node needs online=true/]
  ]
  for (const [query, message] of cases) {
    const res = await p.api('GET', `/v1/admin/devices?${query}`)
    assert.equal(res.status, 400, query)
    assert.equal(res.body.error, 'IOT_ERR_VALIDATION', query)
    assert.match(res.body.message, message, query)
  }
  const anonymous = await p.api('GET', '/v1/admin/devices?online=true', undefined, {})
  assert.equal(anonymous.status, 401)
  assert.equal(anonymous.body.error, 'IOT_ERR_UNAUTHORIZED')
})

test('embedded: a kick closes the device\'s connection and its token still works; unknown and offline devices get 404 and 409', { timeout: 30_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const id = `kick-${randomUUID().slice(0, 6)}`
  const { token } = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  const gone = closed(device)
  const res = await p.api('POST', `/v1/admin/devices/${id}/kick`)
  assert.equal(res.status, 202, JSON.stringify(res.body))
  assert.equal(res.body.id, id)
  assert.equal(res.body.nodeId, p.config.nodeId)
  await gone
  assert.ok(await eventually(async () => (await p.api('GET', `/v1/admin/devices/${id}/presence`)).body.online === false, 10_000))
  const offline = await p.api('POST', `/v1/admin/devices/${id}/kick`)
  assert.equal(offline.status, 409)
  assert.equal(offline.body.error, 'IOT_ERR_DEVICE_OFFLINE')
  assert.match(offline.body.message, /is not online/)
  const unknown = await p.api('POST', '/v1/admin/devices/nobody-here/kick')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.error, 'IOT_ERR_DEVICE_NOT_FOUND')
  // Unlike revoke, the token stays valid.
  const again = await connectDevice(t, p.mqttUrl, id, token)
  assert.equal(again.connected, true)
  const events = p.logs.filter((l) => l.event === 'connect_refused')
  assert.deepEqual(events, [])
})

test('2 nodes on Redis: the listing\'s pages add up to the stats (per node too), and a kick sent to the API process closes the device on the node that holds it', { timeout: 120_000 }, async (t) => {
  const cluster: TestCluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 500 })
  const [n1, n2] = cluster.nodes as [TestCluster['nodes'][number], TestCluster['nodes'][number]]
  const tag = randomUUID().slice(0, 6)
  const ids = Array.from({ length: 23 }, (_, i) => `cl-${tag}-${String(i).padStart(2, '0')}`)
  const tokens = new Map<string, string>()
  const clients = new Map<string, MqttClient>()
  await Promise.all(ids.map(async (id, i) => {
    const { token } = await cluster.api.provision(id)
    tokens.set(id, token)
    clients.set(id, await connectDevice(t, (i % 3 === 0 ? n2 : n1).mqttUrl, id, token))
  }))
  const onN2 = ids.filter((_, i) => i % 3 === 0)
  assert.ok(await eventually(async () => (await cluster.stats()).online === ids.length, 20_000))

  const stats = await cluster.stats()
  const all = await listAll(cluster.api.api, '', 5)
  assert.equal(all.pages, 5)
  assert.deepEqual(all.devices.map((d) => d.id), ids)
  assert.equal(all.devices.length, stats.online, 'the pages add up to the stats\' online count')
  for (const d of all.devices) {
    assert.equal(d.nodeId, onN2.includes(d.id) ? n2.nodeId : n1.nodeId, d.id)
    assert.equal(d.transport, 'tcp')
    assert.equal(d.address, `127.0.0.1:${localPort(clients.get(d.id) as MqttClient)}`)
  }
  for (const n of [n1, n2]) {
    const listed = await listAll(cluster.api.api, `&node=${n.nodeId}`, 4)
    assert.equal(listed.devices.length, stats.nodes.find((s) => s.nodeId === n.nodeId)?.presence, n.nodeId)
    assert.ok(listed.devices.every((d) => d.nodeId === n.nodeId))
  }

  // Kick a device on node 2 through the API process; then kick one on node 1: once that one is closed, the
  // first kick's device is the only other one gone (kicks reach the nodes in order over one channel).
  const victim = onN2[1] as string
  const later = ids[1] as string
  const victimClosed = closed(clients.get(victim) as MqttClient)
  const kick = await cluster.api.api('POST', `/v1/admin/devices/${victim}/kick`)
  assert.equal(kick.status, 202, JSON.stringify(kick.body))
  assert.equal(kick.body.nodeId, n2.nodeId)
  await victimClosed
  const laterClosed = closed(clients.get(later) as MqttClient)
  assert.equal((await cluster.api.api('POST', `/v1/admin/devices/${later}/kick`)).status, 202)
  await laterClosed
  assert.deepEqual(ids.filter((id) => !(clients.get(id)?.connected ?? false)), [later, victim].sort(), 'only the kicked devices were closed')
  assert.ok(await eventually(async () => {
    const s = await cluster.stats()
    const listed = await listAll(cluster.api.api, '', 50)
    return s.online === ids.length - 2 && listed.devices.length === s.online && !listed.devices.some((d) => d.id === victim || d.id === later)
  }, 10_000), 'the kicked devices left presence')
  const offline = await cluster.api.api('POST', `/v1/admin/devices/${victim}/kick`)
  assert.equal(offline.status, 409)
  assert.equal(offline.body.error, 'IOT_ERR_DEVICE_OFFLINE')

  // The token still works: the device comes back, on the other node this time, and a kick finds it there.
  const back = await connectDevice(t, n1.mqttUrl, victim, tokens.get(victim) as string)
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${victim}/presence`)).body.nodeId === n1.nodeId, 10_000))
  const backClosed = closed(back)
  const second = await cluster.api.api('POST', `/v1/admin/devices/${victim}/kick`)
  assert.equal(second.body.nodeId, n1.nodeId)
  await backClosed
})
