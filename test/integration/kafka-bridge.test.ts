import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { listSegments, readSpool } from '../../src/uplink/file-spool.ts'
import { startChildPlatform } from '../helpers/child-platform.ts'
import { assertHeaders, assertStreams, byDevice, consumeUntil, dedupe, distinctMsgIds, testKafka, uniqueTopic } from '../helpers/kafka.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'
import { kafkaBrokers, services } from '../helpers/services.ts'
import { writeLegacySegment, type LegacyRecord } from '../helpers/spool.ts'

// The telemetry bridge against the real Kafka and Redis of scripts/services.sh, with MQTT.js devices over TCP.
// Tests that stop Kafka start it again in t.after; integration tests run one at a time.

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function kafkaEnv (topic: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','),
    PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic,
    PUSHLINE_KAFKA_PRESENCE_TOPIC: `${topic}.presence`,
    PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: '6',
    PUSHLINE_KAFKA_PRESENCE_PARTITIONS: '2',
    // Tests wait for Kafka to come back: keep the back-off short.
    PUSHLINE_KAFKA_BACKOFF_MAX_MS: '1000',
    ...extra
  }
}

/** A payload no text codec would survive: the device and index, then random bytes (0x00, 0xff, '\n' and all). */
function payload (device: string, i: number): Buffer {
  return Buffer.concat([Buffer.from(`${device}#${i}#`), randomBytes(i % 97 * 3)])
}

/** Spreads a device's uplinks over its three kinds of topic. */
function uplinkTopic (device: string, i: number): string {
  if (i % 10 === 0) return `devices/${device}/events`
  return i % 3 === 0 ? `devices/${device}/telemetry/temp` : `devices/${device}/telemetry`
}

async function devicesOn (t: TestContext, p: TestPlatform | { provision: (id: string) => Promise<string>, mqttUrl: string }, prefix: string, n: number): Promise<Array<{ id: string, client: MqttClient }>> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`)
  const tokens = await Promise.all(ids.map(async (id) => {
    const provisioned = await p.provision(id)
    return typeof provisioned === 'string' ? provisioned : provisioned.token
  }))
  return await Promise.all(ids.map(async (id, i) => ({ id, client: await connectDevice(t, p.mqttUrl, id, tokens[i] as string) })))
}

/**
 * Each device publishes QoS 1 uplinks every `intervalMs`, without waiting for PUBACKs, until stopped (which
 * fails if a publish failed).
 * `sent` holds each device's payloads in publish order, `acked` the time each PUBACK arrived and `ackedBy`
 * each device's count of PUBACKs (they come in publish order: its first `ackedBy` uplinks are acknowledged).
 */
function stream (devices: ReadonlyArray<{ id: string, client: MqttClient }>, intervalMs: number): { sent: Map<string, Buffer[]>, acked: number[], ackedBy: Map<string, number>, stop: () => Promise<void> } {
  const sent = new Map<string, Buffer[]>(devices.map((d) => [d.id, []]))
  const ackedBy = new Map<string, number>(devices.map((d) => [d.id, 0]))
  const acked: number[] = []
  const inflight: Array<Promise<unknown>> = []
  const errors: Error[] = []
  const state = { running: true }
  const loops = devices.map(async ({ id, client }) => {
    for (let i = 0; state.running; i++) {
      const p = payload(id, i)
      sent.get(id)?.push(p)
      inflight.push(client.publishAsync(uplinkTopic(id, i), p, { qos: 1 }).then(() => {
        acked.push(Date.now())
        ackedBy.set(id, (ackedBy.get(id) ?? 0) + 1)
      }, (err: Error) => { errors.push(err) }))
      await sleep(intervalMs)
    }
  })
  return {
    sent,
    acked,
    ackedBy,
    stop: async () => {
      state.running = false
      await Promise.all(loops)
      await Promise.all(inflight)
      if (errors.length > 0) throw new Error(`${errors.length} publishes failed, the first: ${errors[0]?.message ?? ''}`)
    }
  }
}

test('10,000 uplinks from 100 devices land in Kafka byte for byte, in order per device, keyed by device, with every header', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('bulk')
  const p = await startTestPlatform(t, { env: kafkaEnv(topic) })
  const devices = await devicesOn(t, p, 'bulk', 100)

  const sent = new Map<string, Buffer[]>()
  const topics = new Map<string, string[]>()
  await Promise.all(devices.map(async ({ id, client }) => {
    const payloads = Array.from({ length: 100 }, (_, i) => payload(id, i))
    sent.set(id, payloads)
    topics.set(id, payloads.map((_, i) => uplinkTopic(id, i)))
    // Pipelined: MQTT.js writes all 100 before the first PUBACK is back.
    await Promise.all(payloads.map((pl, i) => client.publishAsync(uplinkTopic(id, i), pl, { qos: 1 })))
  }))

  const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= 10_000)
  assertStreams(records, sent)
  for (const r of records) assertHeaders(r, p.config.nodeId)
  for (const [id, list] of byDevice(dedupe(records))) assert.ok(list.length === 100, id)
  const headerTopics = new Map<string, string[]>()
  for (const r of dedupe(records)) headerTopics.set(r.key, [...(headerTopics.get(r.key) ?? []), r.headers['mqtt-topic'] as string])
  assert.deepEqual(headerTopics, topics, 'mqtt-topic is the topic each uplink was published on')

  const partitionsOf = new Map<string, Set<number>>()
  for (const r of records) partitionsOf.set(r.key, (partitionsOf.get(r.key) ?? new Set()).add(r.partition))
  assert.ok([...partitionsOf.values()].every((s) => s.size === 1), 'each device stays in one partition')
  assert.ok(new Set(records.map((r) => r.partition)).size > 1, 'devices are spread over partitions')

  const admin = testKafka().admin()
  await admin.connect()
  t.after(() => admin.disconnect())
  const meta = await admin.fetchTopicMetadata({ topics: [topic, `${topic}.presence`] })
  assert.deepEqual(meta.topics.map((m) => [m.name, m.partitions.length]).sort(), [[topic, 6], [`${topic}.presence`, 2]], 'both topics created with their configured partitions')

  await waitUntil('the spool to be released', () => p.spool?.unshippedRecords === 0)
  assert.ok(await p.metric('pushline_kafka_records_total') >= 10_000)
  assert.equal(await p.metric('pushline_spool_unshipped_records'), 0)
  assert.equal(await p.metric('pushline_kafka_connected'), 1)
  const ready = await p.api('GET', '/readyz')
  assert.equal(ready.body.checks.kafka, 'ok')
  assert.equal(ready.body.checks.spool, 'ok')
})

test('Kafka stopped in the middle of a stream: devices keep getting PUBACKs and afterwards every uplink is in Kafka, in order, replays detectable by msg-id', { timeout: 120_000 }, async (t) => {
  t.after(() => services('kafka-start'))
  const topic = uniqueTopic('outage')
  const p = await startTestPlatform(t, { env: kafkaEnv(topic) })
  const devices = await devicesOn(t, p, 'outage', 20)
  await waitUntil('the shipper to connect', () => p.shipper?.status().connected === true)

  const s = stream(devices, 50)
  // The outage is shaped by events, not by the clock: it starts once every device has uplinks acknowledged, and
  // ends once 1,000 more PUBACKs came after the shipper had seen Kafka fail.
  await waitUntil('10 PUBACKs from every device before the outage', () => [...s.ackedBy.values()].every((n) => n >= 10))
  await services('kafka-stop')
  await waitUntil('the shipper to see Kafka fail', () => (p.shipper?.status().consecutiveFailures ?? 0) > 0, 60_000)
  const ackedAtFailure = s.acked.length
  await waitUntil('1,000 PUBACKs while Kafka is down', () => s.acked.length - ackedAtFailure >= 1000, 60_000)
  const ackedWhileDown = s.acked.length - ackedAtFailure
  const failures = await p.metric('pushline_kafka_send_failures_total')
  const lagWhileDown = p.spool?.unshippedRecords ?? 0
  await services('kafka-start')
  await waitUntil('the shipper to reach Kafka again', () => p.shipper?.status().connected === true, 60_000)
  const ackedAtReconnect = s.acked.length
  await waitUntil('200 PUBACKs after Kafka came back', () => s.acked.length - ackedAtReconnect >= 200)
  await s.stop()

  const total = [...s.sent.values()].reduce((n, l) => n + l.length, 0)
  t.diagnostic(`${total} uplinks, ${ackedWhileDown} acknowledged while Kafka was down, ${lagWhileDown} waiting in the spool at the end of the outage`)
  assert.ok(lagWhileDown > 0, 'uplinks waited in the spool')
  assert.ok(failures > 0, 'the shipper noticed the outage')

  const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= total)
  assertStreams(records, s.sent)
  for (const r of records) assertHeaders(r, p.config.nodeId)
  t.diagnostic(`${records.length - total} replays (same msg-id) in Kafka`)
  await waitUntil('the spool to be released', () => p.spool?.unshippedRecords === 0)
})

// Every PUSHLINE_SPOOL_FSYNC mode writes an uplink to the spool file before its PUBACK, so a killed process loses
// none that was acknowledged; `interval` and `never` leave the last writes in the OS's page cache, which only a
// power loss or kernel crash would lose (not something a test on a shared machine can cause).
test('nodes killed with SIGKILL while Kafka is down, one per PUSHLINE_SPOOL_FSYNC mode, ship every acknowledged uplink after they restart', { timeout: 180_000 }, async (t) => {
  await services('kafka-stop')
  t.after(() => services('kafka-start'))
  const modes = ['always', 'interval', 'never'] as const
  const runs = await Promise.all(modes.map(async (fsync) => {
    const topic = uniqueTopic(`sigkill-${fsync}`)
    const dataDir = await mkdtemp(join(tmpdir(), 'pushline-kill-'))
    t.after(() => rm(dataDir, { recursive: true, force: true }))
    const env = { ...kafkaEnv(topic), PUSHLINE_DATA_DIR: dataDir, PUSHLINE_SPOOL_FSYNC: fsync }
    const first = await startChildPlatform(t, { ...env, PUSHLINE_NODE_ID: `killed-${fsync}` })
    const devices = await devicesOn(t, first, `kill-${fsync}`, 5)
    return { fsync, topic, dataDir, env, first, devices }
  }))

  // Uplinks in flight when the nodes die: the acknowledged ones must all survive.
  const results = await Promise.all(runs.map(async (run) => {
    const s = stream(run.devices, 5)
    await waitUntil(`300 PUBACKs from the node with fsync ${run.fsync}`, () => s.acked.length >= 300)
    run.first.child.kill('SIGKILL')
    await bounded(`the node with fsync ${run.fsync} to exit after SIGKILL`, run.first.exited)
    const acked = new Map(s.ackedBy)
    s.stop().catch(() => {}) // the rest are never acknowledged
    for (const d of run.devices) d.client.end(true)
    return { ...run, s, acked }
  }))

  const spooledBy = new Map<string, Map<string, Buffer[]>>()
  for (const { fsync, dataDir, devices, s, acked } of results) {
    const spooled = new Map<string, Buffer[]>(devices.map((d) => [d.id, []]))
    for await (const r of readSpool(join(dataDir, 'spool'))) spooled.get(r.deviceId)?.push(r.payload)
    for (const { id } of devices) {
      const inSpool = spooled.get(id) ?? []
      const sentList = s.sent.get(id) ?? []
      assert.ok(inSpool.length >= (acked.get(id) ?? 0), `fsync ${fsync}, ${id}: ${inSpool.length} spooled, ${acked.get(id) ?? 0} acknowledged`)
      inSpool.forEach((pl, i) => assert.ok(pl.equals(sentList[i] as Buffer), `fsync ${fsync}, ${id}: spooled uplink ${i} is what was sent, in order`))
    }
    t.diagnostic(`fsync ${fsync}: ${[...spooled.values()].reduce((n, l) => n + l.length, 0)} uplinks spooled, ${[...acked.values()].reduce((a, b) => a + b, 0)} acknowledged before the kill`)
    spooledBy.set(fsync, spooled)
  }

  await services('kafka-start')
  await Promise.all(results.map(async ({ fsync, topic, env }) => {
    const spooled = spooledBy.get(fsync) as Map<string, Buffer[]>
    const total = [...spooled.values()].reduce((n, l) => n + l.length, 0)
    const second = await startChildPlatform(t, { ...env, PUSHLINE_NODE_ID: `restarted-${fsync}` })
    const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= total)
    assertStreams(records, spooled)
    for (const r of records) assertHeaders(r, `killed-${fsync}`)
    second.child.kill('SIGTERM')
    assert.equal(await bounded(`the restarted node with fsync ${fsync} to exit after SIGTERM`, second.exited), 0)
  }))
})

test('a run crossing many spool segments ships every uplink once and in order, and deletes the shipped segments', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('segments')
  // The smallest segment size: about 30 of these uplinks fill one.
  const p = await startTestPlatform(t, { env: kafkaEnv(topic, { PUSHLINE_SPOOL_SEGMENT_BYTES: '4096' }) })
  const devices = await devicesOn(t, p, 'seg', 10)
  const sent = new Map<string, Buffer[]>()
  await Promise.all(devices.map(async ({ id, client }) => {
    const payloads = Array.from({ length: 100 }, (_, i) => Buffer.concat([Buffer.from(`${id}#${i}#`), randomBytes(60)]))
    sent.set(id, payloads)
    for (const [i, pl] of payloads.entries()) await client.publishAsync(uplinkTopic(id, i), pl, { qos: 1 })
  }))
  const total = 1000
  await waitUntil('the spool to be released', () => p.spool?.unshippedRecords === 0)
  const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= total)
  assertStreams(records, sent)
  // Read to the topic's end offsets: no uplink was produced twice.
  const admin = testKafka().admin()
  await admin.connect()
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  assert.equal(offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0), total, 'every uplink once in the topic')

  // Every shipped segment is deleted; the one being written stays, and it starts well past the first record.
  const spoolDir = join(p.dataDir, 'spool')
  await waitUntil('the shipped segments to be deleted', async () => (await listSegments(spoolDir)).length === 1)
  const [current] = await listSegments(spoolDir)
  const firstSeq = Number(/seg-(\d+)\./.exec(current as string)?.[1])
  assert.ok(firstSeq > total / 2, `the remaining segment ${current as string} starts at record ${firstSeq}: the spool rolled over many times`)
  assert.equal(await p.metric('pushline_spool_records_total'), total)
})

test('a full spool slows devices down instead of dropping: PUBACKs wait until Kafka takes the backlog, no QoS 1 uplink is lost, dropped QoS 0 uplinks are counted', { timeout: 120_000 }, async (t) => {
  await services('kafka-stop')
  t.after(() => services('kafka-start'))
  const topic = uniqueTopic('full')
  // Kafka is down at start: the node starts anyway, and creates the topics once Kafka is back.
  const p = await startTestPlatform(t, { env: kafkaEnv(topic, { PUSHLINE_SPOOL_MAX_BYTES: '32768' }) })
  const devices = await devicesOn(t, p, 'full', 4)
  const [quiet] = await devicesOn(t, p, 'qos0', 1) as [{ id: string, client: MqttClient }]

  const sent = new Map<string, Buffer[]>()
  const ackTimes: number[] = []
  const publishing = Promise.all(devices.map(async ({ id, client }) => {
    const payloads = Array.from({ length: 100 }, (_, i) => Buffer.concat([Buffer.from(`${id}#${i}#`), randomBytes(200)]))
    sent.set(id, payloads)
    await Promise.all(payloads.map((pl) => client.publishAsync(`devices/${id}/telemetry`, pl, { qos: 1 }).then(() => ackTimes.push(Date.now()))))
  }))
  let allAcked = false
  publishing.then(() => { allAcked = true }, () => {})
  await waitUntil('the spool to fill up', () => p.spool?.full === true)
  await waitUntil('an uplink to wait for room in the spool', async () => await p.metric('pushline_spool_waits_total') > 0)
  assert.ok(await p.metric('pushline_spool_unshipped_bytes') >= 32768)
  const ready = await p.api('GET', '/readyz')
  assert.equal(ready.status, 200, 'a full spool is reported but keeps the node ready: downlinks still work')
  assert.match(ready.body.checks.spool, /^full/)
  assert.match(ready.body.checks.kafka, /^unreachable/)

  for (let i = 0; i < 10; i++) quiet.client.publish(`devices/${quiet.id}/telemetry`, `qos0-${i}`, { qos: 0 })
  await waitUntil('10 dropped QoS 0 uplinks to be counted', async () => await p.metric('pushline_uplinks_dropped_total', { reason: 'spool_full' }) === 10)
  assert.ok(p.logs.some((l) => l.event === 'uplink_dropped'), 'the drop is logged')
  // Kafka is down, so nothing has left the spool: every PUBACK so far must be for an uplink in it.
  const ackedWhileFull = ackTimes.length
  const spooled = p.spool?.unshippedRecords ?? 0
  assert.ok(ackedWhileFull > 0 && ackedWhileFull <= spooled && !allAcked, `PUBACKs wait while the spool is full: ${ackedWhileFull} of 400 acknowledged, ${spooled} spooled`)

  const back = Date.now()
  await services('kafka-start')
  await publishing
  assert.ok(ackTimes.filter((at) => at >= back).length >= 400 - ackedWhileFull, 'the waiting PUBACKs came once Kafka took the backlog')
  const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= 400)
  assertStreams(records, sent)
  assert.ok(await p.metric('pushline_uplinks_dropped_total') === 10, 'nothing else was dropped')
})

test('each uplink is produced once in a two-node cluster, by the node it arrived at', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('cluster')
  const prefix = uniquePrefix()
  const n1 = await startTestPlatform(t, { clusterPrefix: prefix, env: kafkaEnv(topic, { PUSHLINE_NODE_ID: `n1-${prefix.slice(2, 10)}` }) })
  const n2 = await startTestPlatform(t, { clusterPrefix: prefix, env: kafkaEnv(topic, { PUSHLINE_NODE_ID: `n2-${prefix.slice(2, 10)}` }) })
  const [a] = await devicesOn(t, n1, 'cl-a', 1) as [{ id: string, client: MqttClient }]
  const [b] = await devicesOn(t, { provision: async (id: string) => (await n1.provision(id)).token, mqttUrl: n2.mqttUrl }, 'cl-b', 1) as [{ id: string, client: MqttClient }]
  for (let i = 0; i < 20; i++) {
    await a.client.publishAsync(`devices/${a.id}/telemetry`, `a${i}`, { qos: 1 })
    await b.client.publishAsync(`devices/${b.id}/events`, `b${i}`, { qos: 1 })
  }
  // Markers: each node ships its spool in order, so a duplicate either node produced comes before its marker.
  await a.client.publishAsync(`devices/${a.id}/telemetry`, 'marker', { qos: 1 })
  await b.client.publishAsync(`devices/${b.id}/events`, 'marker', { qos: 1 })
  const isMarker = (r: { key: string, value: Buffer }): boolean => r.value.toString() === 'marker'
  const records = await consumeUntil(t, topic, (rs) => rs.filter(isMarker).length === 2 && distinctMsgIds(rs) >= 42)
  // Read to the topic's end offsets: every record in it, not only those the consumer happened to see first.
  const admin = testKafka().admin()
  await admin.connect()
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  const inTopic = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0)
  assert.equal(inTopic, 42, 'no uplink produced twice: 40 uplinks and 2 markers in the topic')
  assert.equal(records.length, 42)
  for (const r of records) assertHeaders(r, r.key === a.id ? n1.config.nodeId : n2.config.nodeId)
})

test('what the spool holds from embedded mode is delivered once Kafka is configured', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('late')
  const embedded = await startTestPlatform(t)
  const [d] = await devicesOn(t, embedded, 'late', 1) as [{ id: string, client: MqttClient }]
  const payloads = Array.from({ length: 30 }, (_, i) => payload(d.id, i))
  for (const pl of payloads) await d.client.publishAsync(`devices/${d.id}/telemetry`, pl, { qos: 1 })
  await d.client.endAsync()
  await embedded.close()

  const withKafka = await startTestPlatform(t, { env: { ...kafkaEnv(topic), PUSHLINE_DATA_DIR: embedded.dataDir } })
  const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= 30)
  assertStreams(records, new Map([[d.id, payloads]]))
  for (const r of records) assertHeaders(r, embedded.config.nodeId)
  await waitUntil('the spool to be released', () => withKafka.spool?.unshippedRecords === 0)
})

test('an uplink Kafka refuses as too large goes to the dead-letter file, counted, and the uplinks after it are delivered', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('too-large')
  const admin = testKafka().admin()
  await admin.connect()
  t.after(() => admin.disconnect())
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: '4096' }] }] })
  const p = await startTestPlatform(t, { env: kafkaEnv(topic, { PUSHLINE_KAFKA_COMPRESSION: 'none', PUSHLINE_KAFKA_LINGER_MS: '50' }) })
  const [d] = await devicesOn(t, p, 'big', 1) as [{ id: string, client: MqttClient }]
  const small = Array.from({ length: 6 }, (_, i) => payload(d.id, i))
  const big = randomBytes(20_000)
  await Promise.all([
    ...small.slice(0, 3).map((pl) => d.client.publishAsync(`devices/${d.id}/telemetry`, pl, { qos: 1 })),
    d.client.publishAsync(`devices/${d.id}/telemetry`, big, { qos: 1 }),
    ...small.slice(3).map((pl) => d.client.publishAsync(`devices/${d.id}/telemetry`, pl, { qos: 1 }))
  ])
  const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= 6)
  assertStreams(records, new Map([[d.id, small]]))
  await waitUntil('the dead letter to be counted', async () => await p.metric('pushline_kafka_dead_letters_total') === 1)
  const dead = (await readFile(join(p.dataDir, 'spool', 'dead-letter.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { payload: string, deviceId: string, topic: string, msgId: string, traceId: string, seq: number })
  assert.equal(dead.length, 1)
  assert.ok(Buffer.from(dead[0]?.payload ?? '', 'base64').equals(big), 'the refused uplink is kept byte for byte')
  // The spool reader's records keep their fields in getters: the line must spell them out.
  assert.equal(dead[0]?.deviceId, d.id)
  assert.equal(dead[0]?.topic, `devices/${d.id}/telemetry`)
  assert.equal(dead[0]?.seq, 3)
  assert.match(dead[0]?.msgId ?? '', /^[0-9a-f-]{36}$/)
  assert.match(dead[0]?.traceId ?? '', /^[0-9a-f]{32}$/)
  await waitUntil('the spool to be released', () => p.spool?.unshippedRecords === 0)
})

test('uplinks shipped again after a crash before the offset write are replays with the same msg-id, which a consumer drops', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('replay')
  const first = await startTestPlatform(t, { env: kafkaEnv(topic) })
  const [d] = await devicesOn(t, first, 'replay', 1) as [{ id: string, client: MqttClient }]
  const payloads = Array.from({ length: 25 }, (_, i) => payload(d.id, i))
  for (const pl of payloads) await d.client.publishAsync(`devices/${d.id}/telemetry`, pl, { qos: 1 })
  await waitUntil('the spool to be released', () => first.spool?.unshippedRecords === 0)
  await d.client.endAsync()
  await first.close()
  // As if the node had died after Kafka's acknowledgement and before the offset reached the disk.
  await rm(join(first.dataDir, 'spool', 'shipped.json'))

  await startTestPlatform(t, { env: { ...kafkaEnv(topic), PUSHLINE_DATA_DIR: first.dataDir } })
  const records = await consumeUntil(t, topic, (rs) => rs.length >= 50)
  assert.equal(records.length, 50, 'every uplink is in Kafka twice')
  assert.equal(distinctMsgIds(records), 25, 'a replay carries the msg-id of the original')
  assertStreams(records, new Map([[d.id, payloads]]))
})

test('a spool written in the JSON-lines format of earlier versions is shipped after an upgrade, in order, before the uplinks that follow', { timeout: 120_000 }, async (t) => {
  const topic = uniqueTopic('upgrade')
  const dataDir = await mkdtemp(join(tmpdir(), 'pushline-upgrade-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  const spoolDir = join(dataDir, 'spool')
  await mkdir(spoolDir)
  const prefix = `upgrade-${randomBytes(3).toString('hex')}`
  const device = `${prefix}-000` // the id devicesOn gives its first device
  const old: LegacyRecord[] = Array.from({ length: 40 }, (_, i) => ({
    seq: i,
    msgId: randomUUID(),
    deviceId: device,
    topic: uplinkTopic(device, i),
    kind: i % 10 === 0 ? 'events' : 'telemetry',
    qos: 1,
    nodeId: 'node-before-upgrade',
    receivedAt: Date.now() - 60_000 + i,
    traceId: randomBytes(16).toString('hex'),
    payload: payload(device, i)
  }))
  // Two segments, the first five already shipped, and a line a crash tore in two at the end.
  await writeLegacySegment(spoolDir, old.slice(0, 25))
  await writeLegacySegment(spoolDir, old.slice(25), '{"seq":40,"msgId":"')
  await writeFile(join(spoolDir, 'shipped.json'), JSON.stringify({ shippedSeq: 5 }))

  const p = await startTestPlatform(t, { env: { ...kafkaEnv(topic), PUSHLINE_DATA_DIR: dataDir } })
  const [d] = await devicesOn(t, p, prefix, 1) as [{ id: string, client: MqttClient }]
  assert.equal(d.id, device)
  const after = Array.from({ length: 10 }, (_, i) => payload(d.id, 100 + i))
  for (const pl of after) await d.client.publishAsync(`devices/${d.id}/telemetry`, pl, { qos: 1 })

  const records = dedupe(await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= 45))
  const shipped = old.slice(5)
  assertStreams(records, new Map([[device, [...shipped.map((r) => r.payload), ...after]]]))
  shipped.forEach((r, i) => {
    const got = records[i]
    assert.deepEqual(got?.headers, { 'mqtt-topic': r.topic, 'node-id': r.nodeId, 'received-at': String(r.receivedAt), 'trace-id': r.traceId, 'msg-id': r.msgId }, `old record ${r.seq} keeps its headers`)
  })
  await waitUntil('the spool to be released', () => p.spool?.unshippedRecords === 0)
  await waitUntil('the old segments to be deleted', async () => (await listSegments(spoolDir)).every((f) => f.endsWith('.spool')))
})

for (const [compression, level] of [['snappy', '1'], ['gzip', '9'], ['none', '1']] as const) {
  test(`with compression ${compression}${compression === 'gzip' ? ` at level ${level}` : ''}, uplinks reach a Kafka consumer byte for byte, in order`, { timeout: 120_000 }, async (t) => {
    const topic = uniqueTopic(`codec-${compression}`)
    const p = await startTestPlatform(t, { env: kafkaEnv(topic, { PUSHLINE_KAFKA_COMPRESSION: compression, PUSHLINE_KAFKA_GZIP_LEVEL: level }) })
    const devices = await devicesOn(t, p, `codec-${compression}`, 3)
    const sent = new Map(devices.map((d) => [d.id, Array.from({ length: 40 }, (_, i) => payload(d.id, i))]))
    await Promise.all(devices.map(async (d) => {
      for (const pl of sent.get(d.id) ?? []) await d.client.publishAsync(`devices/${d.id}/telemetry`, pl, { qos: 1 })
    }))
    const records = await consumeUntil(t, topic, (rs) => distinctMsgIds(rs) >= 120)
    assertStreams(records, sent)
    for (const r of records) assertHeaders(r, p.config.nodeId)
  })
}
