import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { bounded, eventually } from '../helpers/eventually.ts'
import { consumeUntil, uniqueTopic } from '../helpers/kafka.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'
import { kafkaBrokers } from '../helpers/services.ts'

/** Two nodes sharing Redis, their presence events on a topic of their own. */
async function twoNodes (t: TestContext): Promise<{ topic: string, a: TestPlatform, b: TestPlatform }> {
  const topic = uniqueTopic('presence')
  const prefix = uniquePrefix()
  const env = { PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','), PUSHLINE_KAFKA_PRESENCE_TOPIC: topic, PUSHLINE_KAFKA_TELEMETRY_TOPIC: uniqueTopic('telemetry') }
  return { topic, a: await startTestPlatform(t, { clusterPrefix: prefix, env }), b: await startTestPlatform(t, { clusterPrefix: prefix, env }) }
}

test('presence events go to Kafka keyed by device: connected, then disconnected with the reason (normal, takeover, kicked)', { timeout: 120_000 }, async (t) => {
  const { topic, a, b } = await twoNodes(t)
  const { token } = await a.provision('pe-dev')

  const first = await connectDevice(t, a.mqttUrl, 'pe-dev', token)
  await first.endAsync()
  const second = await connectDevice(t, a.mqttUrl, 'pe-dev', token)
  const secondClosed = new Promise<void>((resolve) => second.once('close', () => resolve()))
  await connectDevice(t, b.mqttUrl, 'pe-dev', token) // takes the session over from node a
  // The revoke must come after the takeover has closed the connection on a.
  await bounded('the takeover to close the connection on node a', secondClosed)
  assert.equal((await a.api('POST', '/v1/admin/devices/pe-dev/revoke')).status, 200)

  const want = ['connected', 'disconnected:normal', 'connected', 'disconnected:takeover', 'connected', 'disconnected:kicked']
  const records = await consumeUntil(t, topic, (rs) => rs.length >= want.length, 30_000)
  const events = records.map((r) => JSON.parse(r.value.toString()) as { event: string, nodeId: string, epoch: number, at: number, reason?: string })
  assert.ok(records.every((r) => r.key === 'pe-dev'))
  // The takeover's disconnect may be reported by either node: compare as multisets, then check the node order.
  assert.deepEqual(events.map((e) => e.reason === undefined ? e.event : `${e.event}:${e.reason}`).sort(), [...want].sort())
  // Two nodes produce, so Kafka's order is arrival order; the epochs give the order of the connections.
  const connects = events.filter((e) => e.event === 'connected').sort((x, y) => x.epoch - y.epoch)
  assert.deepEqual(connects.map((e) => e.nodeId), [a.config.nodeId, a.config.nodeId, b.config.nodeId])
  assert.equal(new Set(connects.map((e) => e.epoch)).size, 3, 'each connection has its own epoch')
  for (const e of events) assert.equal(typeof e.at, 'number')
})

test('an operator\'s kick, sent through another node\'s API, is reported as disconnected with reason kicked', { timeout: 60_000 }, async (t) => {
  const { topic, a, b } = await twoNodes(t)
  const { token } = await a.provision('pe-kick')
  const device = await connectDevice(t, b.mqttUrl, 'pe-kick', token)
  const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
  assert.ok(await eventually(async () => (await a.api('GET', '/v1/admin/devices/pe-kick/presence')).body.online === true))
  assert.equal((await a.api('POST', '/v1/admin/devices/pe-kick/kick')).status, 202)
  await bounded('the kicked device\'s close', closed)
  const records = await consumeUntil(t, topic, (rs) => rs.length >= 2, 30_000)
  const events = records.map((r) => JSON.parse(r.value.toString()) as { event: string, nodeId: string, reason?: string })
  assert.deepEqual(events.map((e) => [e.event, e.reason, e.nodeId]), [['connected', undefined, b.config.nodeId], ['disconnected', 'kicked', b.config.nodeId]])
})
