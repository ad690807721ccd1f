import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { eventually } from '../helpers/eventually.ts'
import { startTestCluster, type TestNode } from '../helpers/cluster.ts'
import { consumeUntil, uniqueTopic } from '../helpers/kafka.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY, startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'
import { connectRedis, kafkaBrokers, services } from '../helpers/services.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'

// Operators' view: trace ids that follow a push from the API to the node that delivers it, metrics and health on
// every role, all against real Redis, real Kafka and real processes.

const uid = (): string => randomUUID().slice(0, 8)
const admin = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }

/** A node's JSON log lines (its stdout also holds the start-up lines, which are not JSON). */
function nodeLogs (node: TestNode): Array<Record<string, unknown>> {
  return node.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** The value of one sample of a Prometheus text exposition, summed over the samples that match the labels. */
async function metric (url: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let sum: number | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum = (sum ?? 0) + Number(line.split(' ').pop())
  }
  return sum
}

async function connectToNode (t: Parameters<typeof startTestPlatform>[0], api: TestPlatform, node: TestNode, id: string): Promise<MqttClient> {
  const { token } = await api.provision(id)
  const device = await connectDevice(t, node.mqttUrl, id, token)
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  return device
}

test('a push\'s trace id from its traceparent reaches the receipt, the response headers and the log lines of the API and of the broker process that delivers it', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 500, env: { PUSHLINE_LOG_LEVEL: 'debug' } })
  const node = cluster.nodes[0] as TestNode
  const id = `trace-${uid()}`
  const device = await connectToNode(t, cluster.api, node, id)
  const got: string[] = []
  device.on('message', (_topic, payload) => { got.push(payload.toString()) })

  const traceId = randomBytes(16).toString('hex')
  const res = await fetch(`${cluster.api.httpUrl}/v1/admin/push`, {
    method: 'POST',
    headers: { ...admin, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
    body: JSON.stringify({ deviceId: id, data: { cmd: 'trace-me' }, qos: 1, ttlSeconds: 60 })
  })
  assert.equal(res.status, 202)
  const body = await res.json() as { pushId: string, traceId: string }
  assert.equal(body.traceId, traceId)
  assert.equal(res.headers.get('x-trace-id'), traceId)
  assert.match(res.headers.get('traceparent') ?? '', new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))

  assert.ok(await eventually(async () => got.length === 1, 30_000), 'downlink not received')
  let receipt: { traceId?: string, counts: Record<string, number> } | undefined
  assert.ok(await eventually(async () => {
    receipt = (await cluster.api.api('GET', `/v1/admin/push/${body.pushId}`)).body
    return receipt?.counts.delivered === 1
  }, 30_000), `not delivered: ${JSON.stringify(receipt)}`)
  assert.equal(receipt?.traceId, traceId)

  // One grep of the trace id shows the path: the API accepted and routed it, the node wrote it and got the PUBACK.
  const apiEvents = cluster.api.logs.filter((l) => l.traceId === traceId)
  for (const event of ['push_accepted', 'push_routed']) assert.ok(apiEvents.some((l) => l.event === event), `API log has no ${event} for the trace: ${JSON.stringify(apiEvents)}`)
  assert.ok(apiEvents.some((l) => l.msg === 'request completed'), 'the API request log lines carry the trace id')
  const routed = apiEvents.find((l) => l.event === 'push_routed')
  assert.deepEqual(routed?.nodes, [node.nodeId])
  let nodeEvents: Array<Record<string, unknown>> = []
  assert.ok(await eventually(async () => {
    nodeEvents = nodeLogs(node).filter((l) => l.traceId === traceId)
    return ['push_delivery_order', 'downlink_written', 'downlink_delivered'].every((e) => nodeEvents.some((l) => l.event === e))
  }, 30_000), `node log lines for the trace: ${JSON.stringify(nodeEvents)}`)
  assert.ok(nodeEvents.every((l) => l.nodeId === node.nodeId && l.pushId === body.pushId))
  assert.ok(!node.stdout().includes('trace-me'), 'the push data itself is not logged')

  // A device offline at push time: the node that later holds its connection logs the catch-up under the trace.
  const late = `trace-late-${uid()}`
  const { token } = await cluster.api.provision(late)
  const lateTrace = randomBytes(16).toString('hex')
  const queued = await fetch(`${cluster.api.httpUrl}/v1/admin/push`, {
    method: 'POST',
    headers: { ...admin, traceparent: `00-${lateTrace}-${randomBytes(8).toString('hex')}-01` },
    body: JSON.stringify({ deviceId: late, data: 2, qos: 1, ttlSeconds: 60 })
  })
  assert.equal(queued.status, 202)
  const lateDevice = await connectDevice(t, node.mqttUrl, late, token)
  await lateDevice.subscribeAsync(`devices/${late}/down`, { qos: 1 })
  assert.ok(await eventually(async () => nodeLogs(node).some((l) => l.traceId === lateTrace && l.event === 'downlink_written' && l.how === 'catch-up'), 30_000),
    'the catch-up carries the trace id')
})

test('a push without a valid traceparent gets a new trace id, returned in its body, its headers and its receipt', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const id = `notrace-${uid()}`
  await p.createDevice(id)
  for (const traceparent of [undefined, 'garbage', `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`, `ff-${'a'.repeat(32)}-${'1'.repeat(16)}-01`]) {
    const res = await fetch(`${p.httpUrl}/v1/admin/push`, {
      method: 'POST',
      headers: { ...admin, ...(traceparent !== undefined && { traceparent }) },
      body: JSON.stringify({ deviceId: id, data: 1 })
    })
    assert.equal(res.status, 202)
    const body = await res.json() as { pushId: string, traceId: string }
    assert.match(body.traceId, /^[0-9a-f]{32}$/)
    assert.notEqual(body.traceId, '0'.repeat(32))
    assert.ok(traceparent === undefined || !traceparent.includes(body.traceId), `took the trace id of an invalid traceparent: ${traceparent}`)
    assert.equal(res.headers.get('x-trace-id'), body.traceId)
    assert.equal((await p.api('GET', `/v1/admin/push/${body.pushId}`)).body.traceId, body.traceId)
  }
  // Errors name their trace too.
  const bad = await fetch(`${p.httpUrl}/v1/admin/push`, { method: 'POST', headers: admin, body: '{"deviceId": 1}' })
  assert.equal(bad.status, 400)
  assert.match(bad.headers.get('x-trace-id') ?? '', /^[0-9a-f]{32}$/)
})

test('an uplink\'s trace id in its Kafka header is in the node\'s log line for that uplink', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('trace')
  const p = await startTestPlatform(t, { env: { PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','), PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic, PUSHLINE_KAFKA_PRESENCE_TOPIC: uniqueTopic('presence') } })
  const id = `up-${uid()}`
  const { token } = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.publishAsync(`devices/${id}/telemetry`, '{"t":1}', { qos: 1 })
  const [record] = await consumeUntil(t, topic, (r) => r.length >= 1)
  const traceId = record?.headers['trace-id']
  assert.match(traceId ?? '', /^[0-9a-f]{32}$/)
  const line = p.logs.find((l) => l.traceId === traceId)
  assert.equal(line?.event, 'uplink')
  assert.equal(line?.msgId, record?.headers['msg-id'])
  assert.equal(line?.deviceId, id)
})

test('broker and API processes serve health, readiness and the metrics operators need', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 300 })
  const node = cluster.nodes[0] as TestNode
  const nodeUrl = `http://127.0.0.1:${node.httpPort}`
  const apiUrl = cluster.api.httpUrl
  for (const url of [nodeUrl, apiUrl]) {
    assert.equal((await fetch(`${url}/healthz`)).status, 200)
    assert.equal((await fetch(`${url}/readyz`)).status, 200)
    const res = await fetch(`${url}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
  }

  const id = `met-${uid()}`
  const device = await connectToNode(t, cluster.api, node, id)
  let pushId = ''
  device.on('message', () => {})
  pushId = (await cluster.api.api('POST', '/v1/admin/push', { deviceId: id, data: { n: 1 }, qos: 1 })).body.pushId
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/push/${pushId}`)).body.counts.delivered === 1, 30_000))
  await device.publishAsync(`devices/${id}/telemetry`, 'x'.repeat(100), { qos: 1 })

  // The node: connections, messages in and out by QoS, bytes, receipt transitions it made, drift, Redis, event loop.
  const expectations: Array<[string, Record<string, string>, (v: number) => boolean]> = [
    ['pushline_connections', {}, (v) => v === 1],
    ['pushline_connects_total', {}, (v) => v === 1],
    ['pushline_uplinks_total', { qos: '1' }, (v) => v === 1],
    ['pushline_downlinks_total', { kind: 'device', qos: '1' }, (v) => v === 1],
    ['pushline_downlinks_delivered_total', { kind: 'device' }, (v) => v === 1],
    ['pushline_receipts_total', { state: 'delivered' }, (v) => v === 1],
    ['pushline_mqtt_received_bytes_total', {}, (v) => v > 100],
    ['pushline_mqtt_sent_bytes_total', {}, (v) => v > 20],
    ['pushline_presence_drift', {}, (v) => v === 0],
    ['pushline_redis_roundtrip_seconds_count', {}, (v) => v >= 1],
    ['pushline_spool_unshipped_records', {}, (v) => v >= 1],
    ['nodejs_eventloop_lag_seconds', {}, (v) => v >= 0],
    ['process_resident_memory_bytes', {}, (v) => v > 0]
  ]
  for (const [name, labels, ok] of expectations) {
    let last: number | undefined
    assert.ok(await eventually(async () => { last = await metric(nodeUrl, name, labels); return last !== undefined && ok(last) }, 30_000),
      `node ${name}${JSON.stringify(labels)} = ${last}`)
  }
  // Sent is counted when the receipt moved there: a PUBACK handled before the write's own transition leaves it at
  // delivered, and sent uncounted.
  assert.ok(((await metric(nodeUrl, 'pushline_receipts_total', { state: 'sent' })) ?? 0) <= 1)
  // The API: the receipt it opened, its own Redis round trips, every series labelled with its node id.
  assert.equal(await metric(apiUrl, 'pushline_receipts_total', { state: 'queued' }), 1)
  assert.ok(await eventually(async () => (await metric(apiUrl, 'pushline_redis_roundtrip_seconds_count') ?? 0) >= 1, 30_000))
  assert.equal(await metric(apiUrl, 'pushline_connections'), 0, 'the API holds no MQTT connections')
  assert.match(await (await fetch(`${apiUrl}/metrics`)).text(), new RegExp(`pushline_receipts_total\\{state="queued",node_id="${cluster.api.config.nodeId}"\\} 1`))

  // Draining makes the node unready (new devices go elsewhere), while it stays alive.
  assert.equal((await cluster.api.api('POST', `/v1/admin/nodes/${node.nodeId}/drain`)).status, 202)
  assert.ok(await eventually(async () => (await fetch(`${nodeUrl}/readyz`)).status === 503, 30_000), 'a draining node is not ready')
  const report = await (await fetch(`${nodeUrl}/readyz`)).json() as { checks: Record<string, string> }
  assert.equal(report.checks.cluster, 'draining')
  assert.equal((await fetch(`${nodeUrl}/healthz`)).status, 200)
})

test('a node reports presence drift found by its reconciliation, and none once repaired', { timeout: 120_000 }, async (t) => {
  // A reconciliation every 2 heartbeats: the gauge holds each finding for 4 s, long enough to be read.
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 2000 })
  const node = cluster.nodes[0] as TestNode
  const nodeUrl = `http://127.0.0.1:${node.httpPort}`
  const id = `drift-${uid()}`
  await connectToNode(t, cluster.api, node, id)
  const presence = createRedisPresenceStore({ redis: connectRedis(t), prefix: cluster.prefix })
  assert.ok(await eventually(async () => (await presence.listNode(node.nodeId)).length === 1, 30_000))
  assert.ok(await eventually(async () => await metric(nodeUrl, 'pushline_presence_drift') === 0, 30_000))

  // Lose the device's presence entry behind the node's back: one live session more than entries.
  const [entry] = await presence.listNode(node.nodeId)
  assert.equal(await presence.disconnect(id, node.nodeId, entry?.epoch ?? 0, Date.now()), true)
  assert.ok(await eventually(async () => await metric(nodeUrl, 'pushline_presence_drift') === 1, 30_000, 50), 'drift of one live session without an entry')
  assert.ok(await eventually(async () => (await presence.listNode(node.nodeId)).length === 1, 30_000), 'the entry is restored')
  assert.ok(await eventually(async () => await metric(nodeUrl, 'pushline_presence_drift') === 0, 30_000), 'no drift once repaired')
})

test('an API process is unready while Redis is down, counts the failed pings, and is ready again after', { timeout: 120_000 }, async (t) => {
  const api = await startTestPlatform(t, { clusterPrefix: uniquePrefix(), env: { PUSHLINE_ROLE: 'api', PUSHLINE_HEARTBEAT_MS: '300' } })
  assert.equal((await api.api('GET', '/readyz', undefined, {})).status, 200)
  t.after(() => services('redis-start'))
  await services('redis-stop')
  const down = await api.api('GET', '/readyz', undefined, {})
  assert.equal(down.status, 503)
  assert.notEqual(down.body.checks.redis, 'ok')
  assert.equal((await api.api('GET', '/healthz', undefined, {})).status, 200, 'alive all the same')
  assert.ok(await eventually(async () => await api.metric('pushline_redis_ping_failures_total') >= 1, 30_000), 'failed pings are counted')
  await services('redis-start')
  assert.ok(await eventually(async () => (await api.api('GET', '/readyz', undefined, {})).status === 200, 30_000), 'ready again')
})
