import type { Message, PartitionerArgs, PartitionMetadata } from 'kafkajs'
import { replaceKafkajsModule, type ReplacementState } from './replace-kafkajs-module.ts'

// kafkajs (2.2, pinned in package.json) groups a send's messages by partition in
// src/producer/groupMessagesPerPartition.js by copying the partition's whole list into a new array, and a new
// object into the result, for every message: quadratic in the messages per partition, which is most of a batch of
// uplinks. groupMessagesPerPartition() returns the same result (an object from partition to its messages, in the
// order given) in one pass.
//
// kafkajs's sendMessages.js takes that module when it loads, so it goes in before kafkajs loads (./kafkajs-module.ts).
// test/unit/group-messages-per-partition.test.ts compares both on the same inputs and checks the installation.

interface GroupArgs {
  readonly topic: string
  readonly partitionMetadata: readonly PartitionMetadata[]
  readonly messages: readonly Message[]
  readonly partitioner: (args: PartitionerArgs) => number
}

export function groupMessagesPerPartition ({ topic, partitionMetadata, messages, partitioner }: GroupArgs): Record<number, Message[]> {
  const result: Record<number, Message[]> = {}
  if (partitionMetadata.length === 0) return result
  const metadata = partitionMetadata as PartitionMetadata[]
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata: metadata, message })
    const list = result[partition]
    if (list === undefined) result[partition] = [message]
    else list.push(message)
  }
  return result
}

export type GroupMessagesState = ReplacementState

/**
 * Puts groupMessagesPerPartition() in the place of kafkajs's module of that name. Idempotent. 'too-late' when
 * kafkajs's sendMessages.js loaded before in this process: it keeps its own grouping (the same result, more CPU).
 */
export function installGroupMessagesPerPartition (require: NodeJS.Require): GroupMessagesState {
  return replaceKafkajsModule(require, 'kafkajs/src/producer/groupMessagesPerPartition.js', 'kafkajs/src/producer/sendMessages.js', groupMessagesPerPartition)
}
