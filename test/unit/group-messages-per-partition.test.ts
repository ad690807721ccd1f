import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import type { Message, PartitionerArgs, PartitionMetadata } from 'kafkajs'
import { groupMessagesPerPartition } from '../../src/kafka/group-messages-per-partition.ts'
import { loadKafkajs } from '../../src/kafka/kafkajs-module.ts'

// The linear grouping must give what kafkajs's own gives, and it must be the one kafkajs's producer loads. This file
// loads kafkajs only through loadKafkajs(), after taking kafkajs's own grouping as the reference.

const require = createRequire(import.meta.url)
const GROUP = 'kafkajs/src/producer/groupMessagesPerPartition.js'
const SEND = 'kafkajs/src/producer/sendMessages.js'
type Group = (args: { topic: string, partitionMetadata: PartitionMetadata[], messages: Message[], partitioner: (args: PartitionerArgs) => number }) => Record<number, Message[]>
const kafkajsOwn = require(GROUP) as Group

const metadata = (n: number): PartitionMetadata[] => Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }))
const byKey = ({ message, partitionMetadata }: PartitionerArgs): number => Number(String(message.key).slice(4)) % partitionMetadata.length
const messages = Array.from({ length: 500 }, (_, i): Message => ({ key: `dev-${(i * 7919) % 97}`, value: `v${i}` }))

test('groups as kafkajs does: same partitions, same key order, same messages in the given order', { timeout: 10_000 }, () => {
  for (const partitions of [1, 3, 12, 200]) {
    const args = { topic: 't', partitionMetadata: metadata(partitions), messages, partitioner: byKey }
    const ours = groupMessagesPerPartition(args)
    const theirs = kafkajsOwn(args)
    assert.deepEqual(Object.keys(ours), Object.keys(theirs))
    assert.deepEqual(ours, theirs)
    for (const p of Object.keys(ours)) {
      for (const [i, m] of (ours[Number(p)] as Message[]).entries()) assert.equal(m, theirs[Number(p)]?.[i], 'the same message objects')
    }
  }
  // Partitions not in numeric order of arrival, and no metadata.
  const reversed = { topic: 't', partitionMetadata: metadata(5), messages: messages.slice(0, 20), partitioner: ({ message }: PartitionerArgs) => 4 - (Number(String(message.value).slice(1)) % 5) }
  assert.deepEqual(Object.keys(groupMessagesPerPartition(reversed)), Object.keys(kafkajsOwn(reversed)))
  assert.deepEqual(groupMessagesPerPartition({ ...reversed, partitionMetadata: [] }), kafkajsOwn({ ...reversed, partitionMetadata: [] }))
})

test('is what kafkajs\'s producer loads when kafkajs is loaded through loadKafkajs()', { timeout: 10_000 }, () => {
  assert.equal(require.cache[require.resolve(SEND)], undefined, 'kafkajs must not be loaded yet in this file')
  const first = loadKafkajs()
  assert.equal(first.grouping, 'installed')
  assert.equal(typeof first.kafkajs.Kafka, 'function')
  assert.notEqual(require.cache[require.resolve(SEND)], undefined, 'kafkajs loaded its producer')
  assert.equal(require(GROUP), groupMessagesPerPartition)
  assert.equal(loadKafkajs().grouping, 'already-installed')
})

test('src/ loads kafkajs\'s values only through loadKafkajs(), so nothing loads kafkajs before the grouping is installed', { timeout: 10_000 }, async () => {
  const { readdir, readFile } = await import('node:fs/promises')
  const files = (await readdir(new URL('../../src', import.meta.url), { recursive: true })).filter((f) => f.endsWith('.ts'))
  const offenders: string[] = []
  for (const f of files) {
    const text = await readFile(new URL(`../../src/${f}`, import.meta.url), 'utf8')
    for (const line of text.split('\n')) {
      if (/from 'kafkajs'/.test(line) && !/^import type /.test(line)) offenders.push(`${f}: ${line}`)
      if (/require\('kafkajs'\)/.test(line) && !f.endsWith('kafkajs-module.ts')) offenders.push(`${f}: ${line}`)
    }
  }
  assert.deepEqual(offenders, [])
})
