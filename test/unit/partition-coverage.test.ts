import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Partitioners, type PartitionMetadata } from 'kafkajs'
import { assignPartitions, presetPartitioner, unansweredPartitions } from '../../src/kafka/partition-coverage.ts'

const meta = (n: number): PartitionMetadata[] => Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }))

test('each message gets the partition kafkajs would pick for its key, so a device\'s uplinks stay in one partition', () => {
  const messages = Array.from({ length: 200 }, (_, i) => ({ key: `dev-${i % 37}`, value: `v${i}` }))
  const assigned = assignPartitions('t', messages, 12)
  const kafkajs = Partitioners.DefaultPartitioner()
  assigned.forEach((m, i) => assert.equal(m.partition, kafkajs({ topic: 't', partitionMetadata: meta(12), message: messages[i] as typeof messages[number] }), `message ${i}`))
  assert.ok(new Set(assigned.map((m) => m.partition)).size > 6, 'keys spread over the partitions')
  assert.deepEqual(assignPartitions('t', messages, 0), messages, 'unknown partition count: kafkajs picks')
})

test('a send whose answer misses a partition it carried records for is not done', () => {
  const messages = [{ key: 'a', value: '1', partition: 0 }, { key: 'b', value: '2', partition: 2 }, { key: 'c', value: '3', partition: 2 }]
  const answer = (partition: number, errorCode = 0) => ({ topicName: 't', partition, errorCode })
  assert.deepEqual(unansweredPartitions(messages, [answer(0), answer(2)]), [])
  assert.deepEqual(unansweredPartitions(messages, [answer(0)]), [2], 'the moved leader\'s partition was skipped')
  assert.deepEqual(unansweredPartitions(messages, [answer(0), answer(2, 6)]), [2], 'an answer with an error does not count')
})

test('the producer\'s partitioner keeps a message\'s own partition and otherwise picks as kafkajs does', () => {
  const ours = presetPartitioner()
  const kafkajs = Partitioners.DefaultPartitioner()
  const partitionMetadata = meta(12)
  assert.equal(ours({ topic: 't', partitionMetadata, message: { key: 'dev-1', value: 'v', partition: 7 } }), 7)
  for (let i = 0; i < 50; i++) {
    const message = { key: `dev-${i}`, value: 'v' }
    assert.equal(ours({ topic: 't', partitionMetadata, message }), kafkajs({ topic: 't', partitionMetadata, message }), message.key)
  }
})
