import type { Message } from 'kafkajs'
import { PushlineError } from '../shared/errors.ts'

// A producer message whose Kafka record (RecordBatch v2 record) is already written, offset delta included: a sender
// that groups its records by partition itself can write each partition's records into one buffer and hand kafkajs
// light messages that only carry their partition and their slice of it. kafkajs still counts the messages (the
// idempotent producer's sequence numbers), checks them and groups them by partition; ./produce-request-encoding.ts
// then takes the written records as they are instead of encoding the messages.

/** A message whose `value` is its whole encoded record, written for `offsetDelta` in its partition and timestamp delta 0. */
export class EncodedRecordMessage implements Message {
  readonly value: Buffer
  readonly partition: number
  readonly offsetDelta: number

  constructor (record: Buffer, partition: number, offsetDelta: number) {
    this.value = record
    this.partition = partition
    this.offsetDelta = offsetDelta
  }
}

/**
 * The records of a partition's messages when all of them were written beforehand, in offset order (one copy at
 * most: none when they lie one after the other in one buffer); undefined when none of them was. A partition that
 * mixes both, or whose written records are not in the order they were written for, is a sender's bug: it throws
 * rather than send records whose offsets would be wrong.
 */
export function writtenRecords (messages: readonly unknown[]): Buffer | undefined {
  if (messages.length === 0 || !(messages[0] instanceof EncodedRecordMessage)) return undefined
  const parts = new Array<Buffer>(messages.length)
  let bytes = 0
  let contiguous = true
  let previous: Buffer | undefined
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    if (!(m instanceof EncodedRecordMessage) || m.offsetDelta !== i) {
      throw new PushlineError('IOT_ERR_INTERNAL', `message ${i} of a partition is not the written record of offset delta ${i}`)
    }
    const v = m.value
    if (previous !== undefined && (v.buffer !== previous.buffer || v.byteOffset !== previous.byteOffset + previous.length)) contiguous = false
    parts[i] = v
    bytes += v.length
    previous = v
  }
  if (!contiguous) return Buffer.concat(parts, bytes)
  const first = parts[0] as Buffer
  return Buffer.from(first.buffer, first.byteOffset, bytes)
}
