import { test } from 'node:test'
import assert from 'node:assert/strict'
import { topicReplication } from '../../src/kafka/kafka-client.ts'

test('topics a node creates get 3 replicas and min.insync.replicas 2 when the cluster has 3 brokers or more', () => {
  for (const brokers of [3, 5, 9]) {
    assert.deepEqual(topicReplication(brokers, undefined), { replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }, `${brokers} brokers`)
  }
})

test('a smaller cluster gets as many replicas as it has brokers, and no min.insync.replicas above 1', () => {
  assert.deepEqual(topicReplication(1, undefined), { replicationFactor: 1, configEntries: [] })
  assert.deepEqual(topicReplication(2, undefined), { replicationFactor: 2, configEntries: [] })
  assert.deepEqual(topicReplication(0, undefined), { replicationFactor: 1, configEntries: [] }, 'an empty broker list still asks for one replica')
})

test('PUSHLINE_KAFKA_REPLICATION_FACTOR wins; min.insync.replicas 2 follows from 3 replicas or more', () => {
  assert.deepEqual(topicReplication(3, 1), { replicationFactor: 1, configEntries: [] })
  assert.deepEqual(topicReplication(5, 5), { replicationFactor: 5, configEntries: [{ name: 'min.insync.replicas', value: '2' }] })
})
