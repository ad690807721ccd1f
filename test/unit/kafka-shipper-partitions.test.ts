import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ProducerRecord } from 'kafkajs'
import pino from 'pino'
import { kafkajs } from '../../src/kafka/kafkajs-module.ts'
import { keyPartitioner } from '../../src/kafka/partition-coverage.ts'
import { createKafkaShipper } from '../../src/uplink/kafka-shipper.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { partitionMetadata, standInKafka } from '../helpers/kafka-stand-in.ts'
import { openSpool, tempDir } from '../helpers/spool.ts'

// The shipper's choice of a device's partition: made once when the topic is ready and kept across batches (each
// device hashed once), with the same answer as kafkajs's default partitioner. A unit test: the Kafka client is an
// in-process stand-in that answers every send; the spool is a real one.

const PARTITIONS = 12

test('the shipper hashes each device once across batches and puts its uplinks where kafkajs would', { timeout: 60_000 }, async (t) => {
  const Partitioners = kafkajs().Partitioners
  const original = Partitioners.DefaultPartitioner
  let made = 0
  let hashed = 0
  Partitioners.DefaultPartitioner = (...args) => {
    made++
    const choose = original(...args)
    return (a) => { hashed++; return choose(a) }
  }
  t.after(() => { Partitioners.DefaultPartitioner = original })

  const dir = await tempDir(t)
  const spool = await openSpool(t, { dir, fsync: 'never' })
  const devices = 5
  const total = 60
  for (let i = 0; i < total; i++) {
    await spool.append({ msgId: `msg-${i}`, deviceId: `dev-${i % devices}`, topic: `devices/dev-${i % devices}/telemetry`, kind: 'telemetry', qos: 1, nodeId: 'n1', receivedAt: 1_700_000_000_000 + i, traceId: 't'.repeat(32), payload: Buffer.from(`{"n":${i}}`) })
  }
  const sends: ProducerRecord[] = []
  const shipper = createKafkaShipper({
    kafka: standInKafka(sends, PARTITIONS),
    spool,
    logger: pino({ level: 'silent' }),
    telemetryTopic: 'telemetry',
    topics: [{ topic: 'telemetry', numPartitions: PARTITIONS }],
    batchRecords: 10,
    batchBytes: 1_000_000,
    lingerMs: 0,
    compression: 'none',
    gzipLevel: 1,
    deadLetterPath: `${dir}/dead-letters`
  })
  shipper.start()
  try {
    // The shipper's last error in the message when it does not get there.
    await waitUntil('every record shipped', () => {
      const { shippedRecords, lastError } = shipper.status()
      if (lastError !== undefined) throw new Error(`send failed: ${lastError}`)
      return shippedRecords === total
    })
  } finally {
    // Before the spool closes (t.after): a draining shipper whose spool closed under it would not stop.
    await shipper.close(0)
  }

  assert.ok(sends.length >= total / 10, `shipped in batches (${sends.length})`)
  assert.equal(made, 1, 'one partitioner for the shipper, not one per batch')
  assert.equal(hashed, devices, 'each device hashed once, not once per batch')
  const reference = original()
  const expected = Array.from({ length: devices }, (_, d) => reference({ topic: 'telemetry', partitionMetadata: partitionMetadata(PARTITIONS), message: { key: `dev-${d}`, value: null } }))
  const used = new Set(sends.flatMap((s) => s.messages.map((m) => m.partition as number)))
  assert.deepEqual([...used].sort((a, b) => a - b), [...new Set(expected)].sort((a, b) => a - b), 'the partitions kafkajs picks for the devices')
})

test('a chooser remembers at most its bound of keys and answers the same after forgetting', () => {
  const bounded = keyPartitioner('t', PARTITIONS, 4)
  const unbounded = keyPartitioner('t', PARTITIONS)
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 20; i++) assert.equal(bounded(`dev-${i}`), unbounded(`dev-${i}`), `dev-${i}`)
  }
})
