import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt from 'mqtt'
import { decodeReceiptRecord, type ReceiptRecord } from '../../src/push/receipt-record.ts'
import { createRedisReceiptStore } from '../../src/stores/redis-receipt-store.ts'
import type { ReceiptState } from '../../src/stores/receipt-store.ts'
import { startChildPlatform, type ChildPlatform } from '../helpers/child-platform.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { consumeUntil, uniqueTopic } from '../helpers/kafka.ts'
import { ADMIN_KEY } from '../helpers/platform.ts'
import { tempDir } from '../helpers/process.ts'
import { connectRedis, kafkaBrokers, redisUrl, uniquePrefix } from '../helpers/services.ts'

// The crash window of the receipts stream (docs/receipts-stream.md, Crash window): a process killed after the
// receipt store committed a transition and before its record reached the receipts spool. The kill comes from the
// test seam PUSHLINE_TEST_CRASH_AFTER_RECEIPT_COMMIT, at exactly that point; the restart from the same data
// directory must put the record in Kafka.

interface Setup {
  readonly env: Record<string, string>
  readonly topic: string
  readonly prefix: string
}

async function setup (t: TestContext): Promise<Setup> {
  const topic = uniqueTopic('receipts-crash')
  const prefix = uniquePrefix()
  return {
    topic,
    prefix,
    env: {
      PUSHLINE_REDIS_URL: redisUrl(),
      PUSHLINE_REDIS_PREFIX: prefix,
      PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','),
      PUSHLINE_KAFKA_TELEMETRY_TOPIC: uniqueTopic('receipts-crash-telemetry'),
      PUSHLINE_KAFKA_PRESENCE_TOPIC: uniqueTopic('receipts-crash-presence'),
      PUSHLINE_KAFKA_RECEIPTS_TOPIC: topic,
      PUSHLINE_KAFKA_RECEIPTS_PARTITIONS: '2',
      PUSHLINE_DATA_DIR: await tempDir(t),
      PUSHLINE_NODE_ID: 'crashing-node'
    }
  }
}

/** A QoS 1 push to one device. The process may die before it answers: the test finds the push in Redis. */
async function pushTo (p: ChildPlatform, deviceId: string): Promise<void> {
  await fetch(`${p.httpUrl}/v1/admin/push`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ deviceId, data: { n: 1 }, qos: 1 })
  }).catch(() => undefined)
}

/** Waits for the process to die by the seam's SIGKILL. */
async function killedBySeam (p: ChildPlatform): Promise<void> {
  await bounded('the process to kill itself after the commit', p.exited)
  assert.equal(p.child.signalCode, 'SIGKILL', `killed by the seam: ${p.stderr()}`)
}

/** Restarts from the same data directory and reads the topic until the push's record of `state` is in. */
async function recordAfterRestart (t: TestContext, s: Setup, pushId: string, deviceId: string, state: ReceiptState): Promise<ReceiptRecord> {
  const restarted = await startChildPlatform(t, s.env)
  const has = (r: ReceiptRecord): boolean => r.pushId === pushId && r.deviceId === deviceId && r.state === state
  const records = await consumeUntil(t, s.topic, (rs) => rs.some((r) => has(decodeReceiptRecord(r.value))), 60_000)
  await waitUntil('the restarted process logged the recovery', () => restarted.stdout().includes('"event":"receipt_records_recovered"'))
  return records.map((r) => decodeReceiptRecord(r.value)).find(has) as ReceiptRecord
}

test('the API killed after a push\'s queued receipt is in Redis and before its record is spooled: the record reaches Kafka after the restart', { timeout: 180_000 }, async (t) => {
  const s = await setup(t)
  const first = await startChildPlatform(t, { ...s.env, PUSHLINE_TEST_CRASH_AFTER_RECEIPT_COMMIT: 'queued' })
  await first.provision('crash-q')
  // The device is offline: the push only opens its receipt (queued), and the process dies right after that commit.
  await pushTo(first, 'crash-q')
  await killedBySeam(first)

  const store = createRedisReceiptStore({ redis: connectRedis(t), prefix: s.prefix })
  const [push] = await store.recent(1)
  assert.ok(push !== undefined, 'the push was made')
  const receipt = await store.getReceipt(push.pushId, 'crash-q')
  assert.equal(receipt?.state, 'queued', 'the transition is committed in Redis')

  const record = await recordAfterRestart(t, s, push.pushId, 'crash-q', 'queued')
  assert.deepEqual(record, { pushId: push.pushId, deviceId: 'crash-q', state: 'queued', id: receipt.id, at: receipt.at, nodeId: 'crashing-node', traceId: push.traceId ?? null })
})

test('a node killed after a PUBACK moved a receipt to delivered in Redis and before its record is spooled: the record reaches Kafka after the restart', { timeout: 180_000 }, async (t) => {
  const s = await setup(t)
  const first = await startChildPlatform(t, { ...s.env, PUSHLINE_TEST_CRASH_AFTER_RECEIPT_COMMIT: 'delivered' })
  const token = await first.provision('crash-d')
  const device = await mqtt.connectAsync(first.mqttUrl, { clientId: 'crash-d', username: 'crash-d', password: token, reconnectPeriod: 0, protocolVersion: 4 })
  t.after(() => device.endAsync(true))
  await device.subscribeAsync({ 'devices/crash-d/down': { qos: 1 } })
  // MQTT.js PUBACKs the downlink; the node commits delivered and dies before spooling its record, maybe before the
  // push's 202 is out.
  await pushTo(first, 'crash-d')
  await killedBySeam(first)

  const store = createRedisReceiptStore({ redis: connectRedis(t), prefix: s.prefix })
  const [push] = await store.recent(1)
  assert.ok(push !== undefined, 'the push was made')
  const receipt = await store.getReceipt(push.pushId, 'crash-d')
  assert.equal(receipt?.state, 'delivered', 'the transition is committed in Redis')
  const record = await recordAfterRestart(t, s, push.pushId, 'crash-d', 'delivered')
  assert.equal(record.id, receipt.id)
  assert.equal(record.at, receipt.at)
  assert.equal(record.nodeId, 'crashing-node')
})
