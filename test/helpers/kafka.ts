import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { TestContext } from 'node:test'
import type { Kafka } from 'kafkajs'
import pino from 'pino'
import { createKafka } from '../../src/kafka/kafka-client.ts'
import { waitUntil } from './eventually.ts'
import { kafkaBrokers } from './services.ts'

// Reading what the bridge produced, from the real Kafka, the way a downstream consumer would.

export interface TelemetryRecord {
  readonly partition: number
  readonly offset: string
  readonly key: string
  readonly value: Buffer
  readonly headers: Readonly<Record<string, string>>
}

export function testKafka (brokers: readonly string[] = kafkaBrokers()): Kafka {
  return createKafka({ brokers, clientId: `test-${randomUUID()}`, logger: pino({ level: 'silent' }) })
}

/** A unique topic name per test, so tests never see each other's records. */
export const uniqueTopic = (what: string): string => `test.${what}.${randomUUID().slice(0, 12)}`

/**
 * Consumes `topic` from the beginning with a fresh consumer group until `done(records)` holds, and returns
 * every record read (replays included), in the order of each partition.
 */
export async function consumeUntil (t: TestContext, topic: string, done: (records: readonly TelemetryRecord[]) => boolean, timeoutMs = 60_000, brokers: readonly string[] = kafkaBrokers()): Promise<TelemetryRecord[]> {
  // The platform creates its topics when it reaches Kafka, which may be after the consumer starts.
  const admin = testKafka(brokers).admin()
  await admin.connect()
  try {
    await waitUntil(`topic ${topic} to be created`, async () => (await admin.listTopics()).includes(topic), timeoutMs, 200)
  } finally {
    await admin.disconnect()
  }
  const consumer = testKafka(brokers).consumer({ groupId: `test-${randomUUID()}`, allowAutoTopicCreation: false })
  await consumer.connect()
  t.after(() => consumer.disconnect())
  await consumer.subscribe({ topic, fromBeginning: true })
  const records: TelemetryRecord[] = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${records.length} records of ${topic} in ${timeoutMs} ms without reaching the expected set`)), timeoutMs)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {}
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
        records.push({ partition, offset: message.offset, key: message.key?.toString('utf8') ?? '', value: message.value ?? Buffer.alloc(0), headers })
        if (done(records)) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.stop()
  return records
}

/** Unique message ids among the records. */
export const distinctMsgIds = (records: readonly TelemetryRecord[]): number => new Set(records.map((r) => r.headers['msg-id'])).size

/** Drops replays (same msg-id) keeping the first copy, as a downstream consumer does. */
export function dedupe (records: readonly TelemetryRecord[]): TelemetryRecord[] {
  const seen = new Set<string>()
  return records.filter((r) => {
    const id = r.headers['msg-id'] as string
    if (seen.has(id)) return false
    seen.add(id)
    return true
  })
}

/** Payloads per device (record key), in the order the consumer read them. */
export function byDevice (records: readonly TelemetryRecord[]): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>()
  for (const r of records) {
    const list = out.get(r.key) ?? []
    list.push(r.value)
    out.set(r.key, list)
  }
  return out
}

/** Every record carries the five headers of the Kafka contract, consistent with its key. */
export function assertHeaders (r: TelemetryRecord, nodeId?: string): void {
  assert.deepEqual(Object.keys(r.headers).sort(), ['mqtt-topic', 'msg-id', 'node-id', 'received-at', 'trace-id'])
  assert.match(r.headers['mqtt-topic'] as string, new RegExp(`^devices/${r.key}/(telemetry(/[A-Za-z0-9_.-]+)?|events)$`))
  assert.match(r.headers['received-at'] as string, /^\d{13}$/)
  assert.ok(Math.abs(Number(r.headers['received-at']) - Date.now()) < 10 * 60_000, 'received-at is epoch ms of about now')
  assert.match(r.headers['trace-id'] as string, /^[0-9a-f]{32}$/)
  assert.match(r.headers['msg-id'] as string, /^[0-9a-f-]{36}$/)
  if (nodeId !== undefined) assert.equal(r.headers['node-id'], nodeId)
}

/** Each device's records, replays dropped, are exactly the payloads it sent, byte for byte and in order. */
export function assertStreams (records: readonly TelemetryRecord[], sent: ReadonlyMap<string, readonly Buffer[]>): void {
  const got = byDevice(dedupe(records))
  assert.deepEqual([...got.keys()].sort(), [...sent.keys()].sort(), 'the same devices')
  for (const [device, payloads] of sent) {
    const received = got.get(device) ?? []
    assert.equal(received.length, payloads.length, `${device}: ${received.length} records for ${payloads.length} uplinks`)
    payloads.forEach((p, i) => assert.ok(p.equals(received[i] as Buffer), `${device}: record ${i} differs (order or bytes)`))
  }
}
