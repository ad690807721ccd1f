import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { Partitioners, type KafkaMessage } from 'kafkajs'
import pino from 'pino'
import { createKafka, ensureTopics } from '../../src/kafka/kafka-client.ts'
import { kafkaBrokers } from '../helpers/services.ts'

test('a record produced to the real Kafka is read back by a consumer group, bytes and headers intact', { timeout: 120_000 }, async (t) => {
  const kafka = createKafka({ brokers: kafkaBrokers(), clientId: `test-${randomUUID()}`, logger: pino({ level: 'silent' }) })
  const topic = `test.roundtrip.${randomUUID()}`

  const admin = kafka.admin()
  await admin.connect()
  t.after(() => admin.disconnect())
  assert.deepEqual(await ensureTopics(admin, [{ topic, numPartitions: 3, replicationFactor: 1 }]), [topic])
  assert.deepEqual(await ensureTopics(admin, [{ topic, numPartitions: 3, replicationFactor: 1 }]), [], 'a second call creates nothing')

  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  t.after(() => producer.disconnect())
  const value = Buffer.from([0, 1, 2, 253, 254, 255])
  await producer.send({ topic, acks: -1, messages: [{ key: 'device-1', value, headers: { 'msg-id': 'm-1' } }] })

  const consumer = kafka.consumer({ groupId: `test-group-${randomUUID()}` })
  await consumer.connect()
  t.after(() => consumer.disconnect())
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = await new Promise<KafkaMessage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no record within 30 s')), 30_000)
    consumer.run({ eachMessage: async ({ message }) => { clearTimeout(timer); resolve(message) } }).catch(reject)
  })
  assert.equal(got.key?.toString(), 'device-1')
  assert.deepEqual(got.value, value)
  assert.equal(got.headers?.['msg-id']?.toString(), 'm-1')
})
