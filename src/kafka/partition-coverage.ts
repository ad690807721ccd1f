import type { ICustomPartitioner, Message, PartitionMetadata, RecordMetadata } from 'kafkajs'
import { kafkajs } from './kafkajs-module.ts'

// kafkajs (2.2.4) can resolve a send that left records unsent: its retry after a partition leader died skips every
// broker that answered the first attempt, also when the dead leader's partitions moved to one of them, and returns
// the answers it has (kafkajs#1303; the HA chaos test lost about 1 in 60 acknowledged uplinks this way). So the
// shipper names each record's partition itself (the same murmur2 choice kafkajs makes by key) and counts a send as
// done only when Kafka answered for every partition it held records for.

/** Partition metadata as kafkajs's partitioners read it (they look at the count only). */
const metadataOf = (partitions: number): PartitionMetadata[] =>
  Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: -1, partitionErrorCode: 0, replicas: [], isr: [] }))

/** Keys whose partition a chooser remembers; past it, it forgets them all and hashes again (a bound on memory). */
export const REMEMBERED_KEYS = 65_536

/**
 * The partition kafkajs's default partitioner picks for a key among `partitions`. The hash is taken once per key
 * and remembered (up to `maxKeys` keys), so a shipper makes one chooser per partition count and keeps it across
 * batches: a device's later uplinks cost a map look-up.
 */
export function keyPartitioner (topic: string, partitions: number, maxKeys = REMEMBERED_KEYS): (key: string) => number {
  const partitioner = kafkajs().Partitioners.DefaultPartitioner()
  const partitionMetadata = metadataOf(partitions)
  const byKey = new Map<string, number>()
  return (key) => {
    let partition = byKey.get(key)
    if (partition === undefined) {
      partition = partitioner({ topic, partitionMetadata, message: { key, value: null } })
      if (byKey.size >= maxKeys) byKey.clear()
      byKey.set(key, partition)
    }
    return partition
  }
}

/** Sets each message's partition as kafkajs's default partitioner would pick it for its key. */
export function assignPartitions (topic: string, messages: readonly Message[], partitions: number): Message[] {
  if (partitions < 1) return [...messages]
  const partitioner = kafkajs().Partitioners.DefaultPartitioner()
  const partitionMetadata = metadataOf(partitions)
  const ofKey = keyPartitioner(topic, partitions)
  return messages.map((message) => {
    const partition = typeof message.key === 'string' ? ofKey(message.key) : partitioner({ topic, partitionMetadata, message })
    return { ...message, partition }
  })
}

/**
 * The producer's partitioner: a message's own partition (assignPartitions() set it), else kafkajs's default choice.
 * kafkajs's default filters the partition list on every message before it looks at the message's partition.
 */
export const presetPartitioner: ICustomPartitioner = () => {
  const fallback = kafkajs().Partitioners.DefaultPartitioner()
  return (args) => args.message.partition ?? fallback(args)
}

/** The partitions the messages were sent to that the send's answer does not cover. */
export function unansweredPartitions (messages: readonly Message[], answers: readonly RecordMetadata[]): number[] {
  const answered = new Set(answers.filter((a) => a.errorCode === 0).map((a) => a.partition))
  const sentTo = new Set<number>()
  for (const m of messages) if (m.partition !== undefined) sentTo.add(m.partition)
  return [...sentTo].filter((p) => !answered.has(p)).sort((a, b) => a - b)
}
