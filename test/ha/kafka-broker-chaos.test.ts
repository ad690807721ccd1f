import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { startChildPlatform } from '../helpers/child-platform.ts'
import { haKafkaBrokers, killKafkaBroker, restartKafkaBroker, timeUntil } from '../helpers/ha.ts'
import { consumeUntil, dedupe, testKafka } from '../helpers/kafka.ts'
import { connectDevice } from '../helpers/mqtt.ts'

// Three Kafka brokers; the one leading most of the telemetry partitions is SIGKILLed while devices send QoS 1
// uplinks steadily. Every acknowledged uplink reaches Kafka, each device's in order; replays are counted by msg-id.

const DEVICES = 30

test('the Kafka broker leading the telemetry partitions SIGKILLed under steady uplinks: 0 acknowledged uplinks missing, order per device kept', { timeout: 240_000 }, async (t) => {
  const topic = `test.ha-kafka.${randomUUID().slice(0, 8)}`
  const brokers = haKafkaBrokers()
  // A node gives a topic min(3, live brokers) replicas: wait until a broker restarted by an earlier test is back.
  const admin = testKafka(brokers).admin()
  await admin.connect()
  t.after(() => admin.disconnect())
  await timeUntil('three live Kafka brokers', async () => (await admin.describeCluster()).brokers.length === 3, 60_000)
  const p = await startChildPlatform(t, {
    PUSHLINE_KAFKA_BROKERS: brokers.join(','),
    PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic,
    PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: '3',
    PUSHLINE_UPLINK_RATE_PER_SECOND: '0'
  })
  const devices = await Promise.all(Array.from({ length: DEVICES }, async (_, i) => {
    const id = `kc-${i}`
    return { id, client: await connectDevice(t, p.mqttUrl, id, await p.provision(id)), acked: [] as string[] }
  }))

  // An object, so the loops see the change made outside them.
  const load = { sending: true }
  let acks = 0
  const senders = devices.map(async (d) => {
    for (let seq = 0; load.sending; seq++) {
      // A publish the test's end cut off was never acknowledged: it counts for nothing.
      if (!await d.client.publishAsync(`devices/${d.id}/telemetry`, `${d.id}:${seq}`, { qos: 1 }).then(() => true, () => false)) return
      d.acked.push(`${d.id}:${seq}`)
      acks++
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })

  // The node created the topic: 3 replicas, min.insync.replicas 2 (three brokers).
  await timeUntil('the telemetry topic', async () => (await admin.listTopics()).includes(topic), 60_000)
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
  const partitions = topics[0]?.partitions ?? []
  assert.equal(partitions.length, 3)
  for (const part of partitions) assert.equal(part.replicas.length, 3, `partition ${part.partitionId} replicas ${part.replicas.join(',')}`)
  const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topic, configNames: ['min.insync.replicas'] }] })
  assert.equal(described.resources[0]?.configEntries.find((e) => e.configName === 'min.insync.replicas')?.configValue, '2')

  const inKafka = async (): Promise<number> => Number(/^pushline_kafka_records_total\S* (\d+)/m.exec(await (await fetch(`${p.httpUrl}/metrics`)).text())?.[1] ?? 0)
  await timeUntil('uplinks flowing into Kafka', async () => await inKafka() >= 5 * DEVICES, 60_000)
  const leads = new Map<number, number>()
  for (const part of partitions) leads.set(part.leader, (leads.get(part.leader) ?? 0) + 1)
  const victim = [...leads.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] as number
  t.after(() => restartKafkaBroker(victim))
  const acksAtKill = acks
  killKafkaBroker(victim)

  // Uplinks keep coming well past the kill (they are spooled meanwhile), then stop.
  await timeUntil('uplinks after the kill', async () => acks >= acksAtKill + 20 * DEVICES, 120_000)
  load.sending = false
  await Promise.all(senders)

  const acked = devices.flatMap((d) => d.acked)
  let missing: string[] = []
  const records = await consumeUntil(t, topic, (rs) => {
    const seen = new Set(rs.map((r) => r.value.toString()))
    missing = acked.filter((a) => !seen.has(a))
    return missing.length === 0
  }, 180_000, brokers).catch(async (err: Error) => {
    const ready = await (await fetch(`${p.httpUrl}/readyz`)).text()
    throw new Error(`${err.message}: ${missing.length} of ${acked.length} acknowledged uplinks missing (${missing.slice(0, 5).join(', ')}); broker ${victim} killed at ${acksAtKill} acks; node: ${ready}`)
  })
  const unique = dedupe(records)
  for (const d of devices) {
    // Each device's records, replays dropped, in the order Kafka holds them: its uplinks in the order it sent them.
    const got = unique.filter((r) => r.key === d.id).map((r) => r.value.toString())
    const acknowledged = got.slice(0, d.acked.length)
    assert.deepEqual(acknowledged, d.acked, `${d.id}: Kafka holds its uplinks out of order or with a gap`)
  }
  t.diagnostic(`broker ${victim} (leading ${leads.get(victim) ?? 0} of 3 partitions) killed at ${acksAtKill} acks; ${acked.length} acknowledged uplinks, 0 missing, ${records.length - unique.length} duplicates by msg-id`)
})
