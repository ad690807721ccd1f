import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { mapConcurrent, provisionOverHttp } from '../../bench/lib/devices.ts'
import { decodeReceiptRecord, type ReceiptRecord } from '../../src/push/receipt-record.ts'
import type { Receipt, ReceiptCounts } from '../../src/stores/receipt-store.ts'
import { startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { eventually } from '../helpers/eventually.ts'
import { consumeUntil, testKafka, uniqueTopic } from '../helpers/kafka.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY, startTestPlatform } from '../helpers/platform.ts'
import { dedupeReceipts, finalStates, rebuildCounts } from '../helpers/receipts.ts'
import { kafkaBrokers, services } from '../helpers/services.ts'
import { readSpool } from '../../src/uplink/file-spool.ts'

// The receipts stream against the real Kafka and Redis of scripts/services.sh: an API process and three broker
// node processes, MQTT.js devices over TCP. What a backend rebuilds from the topic (records read to the topic's end
// offsets, replays dropped by (pushId, deviceId, state)) must equal what GET /v1/admin/push/{id} says, device by
// device, also when Kafka was stopped in the middle.

const DEVICES = 1000
const OFFLINE = 300
const EXPIRING = 50
const UNKNOWN = ['nobody-1', 'nobody-2', 'nobody-3']

interface Device {
  readonly id: string
  readonly acks: boolean
  client?: MqttClient
}

/** Connects the device to its node, subscribes its downlinks and broadcasts; acking devices ack every downlink. */
async function goOnline (t: TestContext, d: Device, url: string, token: string): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId: d.id, username: d.id, password: token, reconnectPeriod: 0, connectTimeout: 30_000, protocolVersion: 4 })
  t.after(() => client.endAsync(true))
  d.client = client
  if (d.acks) {
    client.on('message', (topic, payload) => {
      const m = JSON.parse(payload.toString()) as { id: number, pushId: string }
      // Targeted downlinks are acked by message id, broadcasts by push id.
      const ack = topic === 'broadcast/all' ? { id: m.pushId } : { id: m.id }
      client.publish(`devices/${d.id}/ack`, JSON.stringify(ack), { qos: 1 })
    })
  }
  await client.subscribeAsync({ [`devices/${d.id}/down`]: { qos: 1 }, 'broadcast/all': { qos: 1 } })
}

async function getJson (url: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any -- admin API JSON
  const res = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  assert.equal(res.status, 200, url)
  return await res.json()
}

/** A push's counts and, for device and list pushes, every receipt (all pages). */
async function pushView (cluster: TestCluster, pushId: string): Promise<{ counts: ReceiptCounts, traceId: string, devices: Receipt[] }> {
  const devices: Receipt[] = []
  let after: string | undefined
  let first: { counts: ReceiptCounts, traceId: string } | undefined
  do {
    const page = await getJson(`${cluster.api.httpUrl}/v1/admin/push/${pushId}?limit=500${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`)
    first ??= { counts: page.counts, traceId: page.traceId }
    devices.push(...page.devices as Receipt[])
    after = page.next ?? undefined
  } while (after !== undefined)
  return { ...first, devices }
}

/** Receipt records each process has not shipped yet: the API's from its spool, each node's from its metrics. */
async function unshipped (cluster: TestCluster): Promise<number> {
  let n = cluster.api.receiptStream?.status().unshippedRecords ?? Infinity
  for (const node of cluster.nodes) {
    const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith('pushline_receipt_records_unshipped'))
    n += line === undefined ? Infinity : Number(line.split(' ').pop())
  }
  return n
}

/** Every record of the topic, read up to its end offsets as they are now. */
async function readToEnd (t: TestContext, topic: string): Promise<ReceiptRecord[]> {
  const admin = testKafka().admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  const want = new Map(ends.filter((p) => Number(p.high) > 0).map((p) => [p.partition, Number(p.high) - 1]))
  const raw = await consumeUntil(t, topic, (records) => {
    const last = new Map<number, number>()
    for (const r of records) last.set(r.partition, Math.max(last.get(r.partition) ?? -1, Number(r.offset)))
    return [...want].every(([p, offset]) => (last.get(p) ?? -1) >= offset)
  }, 120_000)
  return raw.map((r) => {
    const record = decodeReceiptRecord(r.value)
    assert.equal(r.key, record.deviceId, 'the key is the device id')
    return record
  })
}

test('the receipt records in Kafka match GET /v1/admin/push/{id} exactly, device by device, across a Kafka outage', { timeout: 600_000 }, async (t) => {
  const topic = uniqueTopic('receipts')
  const cluster = await startTestCluster(t, {
    nodes: 3,
    heartbeatMs: 1000,
    env: {
      PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','),
      PUSHLINE_KAFKA_RECEIPTS_TOPIC: topic,
      PUSHLINE_KAFKA_RECEIPTS_PARTITIONS: '6',
      PUSHLINE_KAFKA_TELEMETRY_TOPIC: `${topic}.telemetry`,
      PUSHLINE_KAFKA_PRESENCE_TOPIC: `${topic}.presence`,
      PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: '1',
      PUSHLINE_KAFKA_PRESENCE_PARTITIONS: '1',
      // The test waits for Kafka to come back: keep the back-off short.
      PUSHLINE_KAFKA_BACKOFF_MAX_MS: '1000',
      PUSHLINE_CONNECT_RATE_PER_SECOND: '0'
    }
  })
  t.after(() => services('kafka-start'))

  const ids = Array.from({ length: DEVICES }, (_, i) => `rs-${String(i).padStart(4, '0')}`)
  const creds = await provisionOverHttp({ httpUrl: cluster.api.httpUrl, adminKey: ADMIN_KEY, deviceIds: ids, concurrency: 16 })
  // The first OFFLINE devices never connect; of the others every second one acks what it gets.
  const devices: Device[] = ids.map((id, i) => ({ id, acks: i % 2 === 0 }))
  const online = devices.slice(OFFLINE)
  await mapConcurrent(online, 32, async (d, i) => {
    const node = cluster.nodes[i % cluster.nodes.length] as TestCluster['nodes'][number]
    await goOnline(t, d, node.mqttUrl, creds[OFFLINE + i]?.token as string)
  })
  const ackers = online.filter((d) => d.acks).length
  assert.ok(await eventually(async () => (await cluster.stats()).online === online.length, 60_000), 'every online device is in presence')

  const push = async (body: Record<string, unknown>): Promise<string> => {
    const res = await cluster.api.api('POST', '/v1/admin/push', { data: { n: 1 }, qos: 1, ...body })
    assert.equal(res.status, 202, JSON.stringify(res.body))
    return res.body.pushId as string
  }

  // Before the outage: one device's push, acked, its records in Kafka.
  const single = await push({ deviceId: (online.find((d) => d.acks) as Device).id, ttlSeconds: 3600 })
  assert.ok(await eventually(async () => (await pushView(cluster, single)).counts.acked === 1, 60_000), 'the single push is acked')
  assert.ok(await eventually(async () => await unshipped(cluster) === 0, 60_000), 'its records are in Kafka before the outage')

  // A list push to every device and three unknown ids; Kafka goes away while it is being delivered.
  const listPush = await push({ deviceIds: [...ids, ...UNKNOWN], ttlSeconds: 3600 })
  await services('kafka-stop')
  // Made while Kafka is away: a broadcast to everyone online, and a push to offline devices that expires.
  const broadcast = await push({ all: true, ttlSeconds: 3600 })
  const expiring = await push({ deviceIds: ids.slice(0, EXPIRING), ttlSeconds: 1 })
  const expected: Record<string, ReceiptCounts> = {
    [single]: { queued: 0, sent: 0, delivered: 0, acked: 1, expired: 0, failed: 0 },
    [listPush]: { queued: OFFLINE, sent: 0, delivered: online.length - ackers, acked: ackers, expired: 0, failed: UNKNOWN.length },
    [broadcast]: { queued: 0, sent: 0, delivered: online.length - ackers, acked: ackers, expired: 0, failed: 0 },
    [expiring]: { queued: 0, sent: 0, delivered: 0, acked: 0, expired: EXPIRING, failed: 0 }
  }
  const settled = async (): Promise<boolean> => {
    for (const [pushId, counts] of Object.entries(expected)) {
      if (JSON.stringify((await pushView(cluster, pushId)).counts) !== JSON.stringify(counts)) return false
    }
    return true
  }
  // The outage lasts until every push has its final counts: every receipt record of those transitions was made
  // while Kafka was away, and what the spools still hold then waits for Kafka.
  assert.ok(await eventually(settled, 180_000, 500), 'the pushes reach their final counts while Kafka is away')
  const spooledDuringOutage = await unshipped(cluster)
  await services('kafka-start')

  assert.ok(await settled(), 'the final counts stay once Kafka is back')
  assert.ok(spooledDuringOutage > 0, 'records were made while Kafka was away')
  assert.ok(await eventually(async () => await unshipped(cluster) === 0, 180_000, 500), 'every process shipped its receipt records')

  const records = await readToEnd(t, topic)
  const distinct = dedupeReceipts(records)
  t.diagnostic(`${records.length} records read, ${distinct.length} distinct; ${spooledDuringOutage} waited in the spools during the outage`)
  const apiNode = cluster.api.config.nodeId
  const brokerNodes = new Set(cluster.nodes.map((n) => n.nodeId))
  for (const pushId of [single, listPush, broadcast, expiring]) {
    const view = await pushView(cluster, pushId)
    assert.deepEqual(view.counts, expected[pushId], `${pushId}: still the final counts`)
    assert.deepEqual(rebuildCounts(distinct, pushId), view.counts, `${pushId}: counts rebuilt from Kafka`)
    const mine = distinct.filter((r) => r.pushId === pushId)
    for (const r of mine) {
      assert.equal(r.traceId, view.traceId, 'every record carries the push\'s trace id')
      // Queued, failed and expired are made by the API; sent, delivered and acked by the node that holds the device.
      assert.ok(['queued', 'failed', 'expired'].includes(r.state) ? r.nodeId === apiNode : brokerNodes.has(r.nodeId), `${r.state} made by ${r.nodeId}`)
    }
    if (pushId === broadcast) continue
    // Device and list pushes: each device's last record is its receipt, message id included.
    const last = finalStates(distinct, pushId)
    assert.equal(last.size, view.devices.length, `${pushId}: a record for every receipt`)
    for (const receipt of view.devices) {
      const r = last.get(receipt.deviceId)
      assert.equal(r?.state, receipt.state, `${pushId} ${receipt.deviceId}`)
      assert.equal(r?.id, receipt.id ?? null, `${pushId} ${receipt.deviceId}: message id`)
    }
  }
})

test('embedded mode without Kafka keeps the receipt records in the local receipts spool; PUSHLINE_RECEIPTS_STREAM=false keeps none', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('emb-1')
  await p.provision('emb-2')
  const client = await connectDevice(t, p.mqttUrl, 'emb-1', token)
  client.on('message', (_topic, payload) => { client.publish('devices/emb-1/ack', JSON.stringify({ id: (JSON.parse(payload.toString()) as { id: number }).id }), { qos: 1 }) })
  await client.subscribeAsync('devices/emb-1/down', { qos: 1 })
  const res = await p.api('POST', '/v1/admin/push', { deviceIds: ['emb-1', 'emb-2', 'nobody'], data: 'x' })
  assert.equal(res.status, 202)
  const pushId = res.body.pushId as string
  const final = { queued: 1, sent: 0, delivered: 0, acked: 1, expired: 0, failed: 1 }
  assert.ok(await eventually(async () => JSON.stringify((await p.api('GET', `/v1/admin/push/${pushId}`)).body.counts) === JSON.stringify(final), 30_000))
  const spooled = async (): Promise<ReceiptRecord[]> => {
    const out: ReceiptRecord[] = []
    for await (const r of readSpool(join(p.dataDir, 'receipts'))) out.push(decodeReceiptRecord(r.payload))
    return out
  }
  // The ack's record is written before its transition's caller goes on; poll until the spool holds it.
  assert.ok(await eventually(async () => (await spooled()).some((r) => r.state === 'acked'), 30_000))
  const records = await spooled()
  assert.deepEqual(rebuildCounts(records, pushId), final)
  // sent and delivered may be overtaken by the PUBACK and the ack (a move the store refused has no record).
  const seen = records.map((r) => `${r.deviceId}:${r.state}`)
  assert.deepEqual(seen.filter((x) => x !== 'emb-1:sent' && x !== 'emb-1:delivered').sort(), ['emb-1:acked', 'emb-1:queued', 'emb-2:queued', 'nobody:failed'])
  assert.equal(new Set(seen).size, seen.length, 'one record per transition')
  assert.equal(p.receiptStream?.status().unshippedRecords, records.length, 'without Kafka every record waits in the spool')

  const off = await startTestPlatform(t, { env: { PUSHLINE_RECEIPTS_STREAM: 'false' } })
  await off.provision('emb-3')
  const r2 = await off.api('POST', '/v1/admin/push', { deviceId: 'emb-3', data: 'x' })
  assert.equal(r2.status, 202)
  assert.equal(off.receiptStream, undefined)
  assert.equal(existsSync(join(off.dataDir, 'receipts')), false)
})
