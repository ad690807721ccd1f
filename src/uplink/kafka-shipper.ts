import { open } from 'node:fs/promises'
import type { Kafka, Message, Producer } from 'kafkajs'
import type { Logger } from 'pino'
import type { KafkaCompression } from '../config/settings.ts'
import { setUpCompression } from '../kafka/compression.ts'
import { EncodedRecordMessage } from '../kafka/encoded-record-message.ts'
import { ensureTopics, type TopicSpec } from '../kafka/kafka-client.ts'
import { assignPartitions, keyPartitioner, presetPartitioner, unansweredPartitions } from '../kafka/partition-coverage.ts'
import { uplinkRecordMessages } from './uplink-kafka-records.ts'
import type { UplinkMetrics } from './uplink-metrics.ts'
import type { FileSpool, SpoolRecord, SpoolReader } from './file-spool.ts'
import { payloadLength, plainRecord } from './spool-format.ts'

// The one sender of a node: it tails the spool from the shipped offset, produces batches to the telemetry
// topic and releases them once Kafka has acknowledged them. A batch that fails is sent again, unchanged, after
// a back-off, for as long as it takes: nothing is skipped, so a device's records never overtake each other.
// Replays (a crash between Kafka's ack and the offset write, a resend after a lost ack) carry the same msg-id.

export interface KafkaShipperOptions {
  readonly kafka: Kafka
  readonly spool: FileSpool
  readonly logger: Logger
  readonly metrics?: Pick<UplinkMetrics, 'kafkaRecords' | 'kafkaBytes' | 'kafkaBatches' | 'kafkaSendFailures' | 'kafkaDeadLetters'>
  readonly telemetryTopic: string
  /** How a spooled record becomes a Kafka record (default: toKafkaMessage, an uplink with its headers). */
  readonly toMessage?: (record: SpoolRecord) => Message
  /** Created at start when missing (the telemetry topic among them); existing topics are left as they are. */
  readonly topics: readonly TopicSpec[]
  readonly batchRecords: number
  /** Spool bytes per produce request (one record may go over it). */
  readonly batchBytes: number
  /** How long a batch that is not full waits for more records. */
  readonly lingerMs: number
  readonly compression: KafkaCompression
  /** zlib level of gzip (1 to 9). */
  readonly gzipLevel: number
  /** Back-off between attempts, doubling from initialMs up to maxMs, with jitter. */
  readonly backoff?: { readonly initialMs?: number, readonly maxMs?: number }
  /** Retries inside one kafkajs send before it reports a failure to the shipper. */
  readonly sendRetries?: number
  /** After this many failures in a row the producer is disconnected and made anew (kafkajs #979, #919). */
  readonly recreateAfterFailures?: number
  /** Where a record Kafka refuses for good (too large) is kept, one JSON line each. */
  readonly deadLetterPath: string
}

export interface ShipperStatus {
  /** The last produce (or connect) succeeded. */
  readonly connected: boolean
  readonly topicsReady: boolean
  readonly lagRecords: number
  readonly lagBytes: number
  /** Age of the oldest record being sent, in seconds (0 when caught up). */
  readonly lagSeconds: number
  readonly consecutiveFailures: number
  readonly lastError: string | undefined
  readonly shippedRecords: number
}

export interface KafkaShipper {
  start (): void
  status (): ShipperStatus
  /** Ships what is pending for at most `drainMs`, then stops. Whatever is not in Kafka stays in the spool. */
  close (drainMs?: number): Promise<void>
}

const TOO_LARGE = ['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']

/** Kafka error types (kafkajs `type`) along an error's cause chain. */
function errorTypes (err: unknown): string[] {
  const types: string[] = []
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const type = (e as { type?: unknown }).type
    if (typeof type === 'string') types.push(type)
  }
  return types
}

function sleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

export function toKafkaMessage (r: SpoolRecord): Message {
  return {
    key: r.deviceId,
    value: r.payload,
    headers: {
      'mqtt-topic': r.topic,
      'node-id': r.nodeId,
      'received-at': String(r.receivedAt),
      'trace-id': r.traceId,
      'msg-id': r.msgId
    }
  }
}

export function createKafkaShipper (opts: KafkaShipperOptions): KafkaShipper {
  const { spool, logger, metrics } = opts
  const initialBackoff = opts.backoff?.initialMs ?? 300
  const maxBackoff = opts.backoff?.maxMs ?? 30_000
  const recreateAfter = opts.recreateAfterFailures ?? 3
  const compression = setUpCompression(opts.compression, opts.gzipLevel)

  let reader: SpoolReader | undefined
  let producer: Producer | undefined
  let topicsReady = false
  /** Partitions of the telemetry topic, read when the topics are ready. */
  let telemetryPartitions = 0
  /** A device id's partition in the telemetry topic, made when the topics are ready and kept across batches. */
  let partitionOf: ((key: string) => number) | undefined
  let connected = false
  let failures = 0
  let lastError: string | undefined
  let shippedRecords = 0
  /** Records handed out by the reader and not yet in Kafka, oldest first; the first `sendCount` go next. */
  let pending: SpoolRecord[] = []
  let sendCount = 0
  let loop: Promise<void> | undefined
  let draining = false
  let deadline = Infinity
  /** Aborted when close() starts: interrupts waits so that the loop drains. */
  const wake = new AbortController()
  /** Aborted when the drain time is over: the loop stops at the next step. */
  const stop = new AbortController()

  const backoffMs = (): number => {
    const base = Math.min(maxBackoff, initialBackoff * 2 ** Math.min(failures - 1, 20))
    return Math.round(base * (0.5 + Math.random() * 0.5))
  }

  async function prepareTopics (): Promise<void> {
    const admin = opts.kafka.admin()
    try {
      await admin.connect()
      const created = await ensureTopics(admin, opts.topics)
      if (created.length > 0) logger.info({ event: 'kafka_topics_created', topics: created }, 'Kafka topics created')
      const { topics } = await admin.fetchTopicMetadata({ topics: opts.topics.map((t) => t.topic) })
      const partitions = topics.find((t) => t.name === opts.telemetryTopic)?.partitions.length ?? 0
      if (partitions !== telemetryPartitions || partitionOf === undefined) {
        telemetryPartitions = partitions
        partitionOf = partitions > 0 ? keyPartitioner(opts.telemetryTopic, partitions) : undefined
      }
      for (const t of topics) {
        const wanted = opts.topics.find((c) => c.topic === t.name)?.numPartitions
        if (wanted !== undefined && wanted !== -1 && t.partitions.length !== wanted) {
          logger.warn({ event: 'kafka_topic_partitions', topic: t.name, partitions: t.partitions.length, configured: wanted }, 'an existing Kafka topic has another partition count than configured; it is used as it is')
        }
      }
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }

  async function dropProducer (): Promise<void> {
    const p = producer
    producer = undefined
    connected = false
    await p?.disconnect().catch(() => {})
  }

  async function connectProducer (): Promise<Producer> {
    const p = opts.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: presetPartitioner,
      retry: { retries: opts.sendRetries ?? 2 }
    })
    try {
      await p.connect()
    } catch (err) {
      await p.disconnect().catch(() => {})
      throw err
    }
    producer = p
    connected = true
    return p
  }

  /** The next batch: waits for a record, then up to `lingerMs` for more unless the batch is full. */
  async function nextBatch (r: SpoolReader): Promise<SpoolRecord[] | undefined> {
    const limits = { maxRecords: opts.batchRecords, maxBytes: opts.batchBytes }
    if (draining) {
      // What the broker appended before it closed, then stop.
      if (r.position >= spool.nextSeq) return undefined
      return (await r.read(limits, { wait: true, signal: stop.signal }))?.records as SpoolRecord[] | undefined
    }
    const first = await r.read(limits, { wait: true, signal: wake.signal })
    if (first === undefined || first.records.length === 0) return undefined
    const records = [...first.records]
    if (opts.lingerMs > 0 && records.length < opts.batchRecords && first.bytes < opts.batchBytes) {
      await sleep(opts.lingerMs, wake.signal)
      const more = await r.read({ maxRecords: opts.batchRecords - records.length, maxBytes: opts.batchBytes - first.bytes }, { wait: false })
      if (more !== undefined) records.push(...more.records)
    }
    return records
  }

  async function deadLetter (record: SpoolRecord, err: Error): Promise<void> {
    const fh = await open(opts.deadLetterPath, 'a')
    try {
      await fh.write(JSON.stringify({ ...plainRecord(record), payload: record.payload.toString('base64'), error: err.message, at: Date.now() }) + '\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
    metrics?.kafkaDeadLetters.inc()
    logger.error({ event: 'uplink_dead_letter', traceId: record.traceId, msgId: record.msgId, deviceId: record.deviceId, bytes: record.payload.length, file: opts.deadLetterPath, err: err.message },
      'Kafka refused an uplink as too large: kept in the dead-letter file, not sent again')
  }

  /**
   * The batch as producer messages, each with its partition. Uplinks (the default mapping) are written as Kafka
   * records here, one buffer per partition; a custom mapping goes through kafkajs's encoding of its messages.
   */
  function toMessages (batch: readonly SpoolRecord[]): Message[] {
    if (opts.toMessage === undefined && partitionOf !== undefined) return uplinkRecordMessages(batch, partitionOf)
    return assignPartitions(opts.telemetryTopic, batch.map(opts.toMessage ?? toKafkaMessage), telemetryPartitions)
  }

  /** Bytes of the records' values (an uplink's payload; a written record's value is the whole record). */
  function valueBytes (batch: readonly SpoolRecord[], messages: readonly Message[]): number {
    if (messages[0] instanceof EncodedRecordMessage) return batch.reduce((n, r) => n + payloadLength(r), 0)
    return messages.reduce((n, m) => n + (m.value as Buffer).length, 0)
  }

  function release (seq: number): void {
    spool.release(seq).catch((err: Error) => {
      logger.error({ event: 'spool_offset_write_failed', err: err.message }, 'shipped offset not persisted (records after the last persisted offset will be sent again)')
    })
  }

  async function run (): Promise<void> {
    const r = spool.reader()
    reader = r
    while (!stop.signal.aborted) {
      // Stopping and nothing left to ship.
      if (draining && pending.length === 0 && r.position >= spool.nextSeq) break
      try {
        if (!topicsReady) {
          await prepareTopics()
          topicsReady = true
        }
        const p = producer ?? await connectProducer()
        if (pending.length === 0) {
          const records = await nextBatch(r)
          if (records === undefined || records.length === 0) {
            if (draining && r.position >= spool.nextSeq) break
            // A reader of a closed spool answers at once with nothing: asking again would spin. The spool's owner
            // closes the shipper first; this is the bound when it does not.
            if (r.closed) {
              logger.warn({ event: 'shipper_spool_closed' }, 'the spool closed before the shipper: shipping stops')
              break
            }
            continue
          }
          pending = records
          sendCount = records.length
        }
        const batch = pending.slice(0, sendCount)
        const messages = toMessages(batch)
        const answers = await p.send({ topic: opts.telemetryTopic, acks: -1, timeout: 30_000, compression, messages })
        const unanswered = unansweredPartitions(messages, answers)
        if (unanswered.length > 0) {
          // Sent again whole: the partitions Kafka did answer for get duplicates, which carry the same msg-id.
          throw new Error(`Kafka answered the batch without partitions ${unanswered.join(', ')}: sending it again`)
        }
        if (failures > 0) logger.info({ event: 'kafka_recovered', failures, lagRecords: spool.unshippedRecords }, 'Kafka reachable again: shipping the spool')
        connected = true
        failures = 0
        lastError = undefined
        pending = pending.slice(batch.length)
        sendCount = pending.length
        shippedRecords += batch.length
        metrics?.kafkaBatches.inc()
        metrics?.kafkaRecords.inc(batch.length)
        metrics?.kafkaBytes.inc(valueBytes(batch, messages))
        release((batch[batch.length - 1] as SpoolRecord).seq)
        if (draining && Date.now() >= deadline) break
      } catch (err) {
        const e = err as Error
        if (stop.signal.aborted) break
        const types = errorTypes(e)
        if (types.some((t) => TOO_LARGE.includes(t)) && pending.length > 0) {
          if (sendCount > 1) {
            sendCount = Math.ceil(sendCount / 2)
            logger.warn({ event: 'kafka_batch_too_large', records: sendCount }, 'Kafka refused a batch as too large: sending it in smaller parts')
            continue
          }
          const record = pending[0] as SpoolRecord
          try {
            await deadLetter(record, e)
            pending.shift()
            release(record.seq)
            sendCount = pending.length
            continue
          } catch (dlErr) {
            // Kept in the spool and tried again after the back-off below.
            logger.error({ event: 'dead_letter_failed', msgId: record.msgId, err: (dlErr as Error).message }, 'dead-letter file not writable')
          }
        }
        failures++
        connected = false
        lastError = e.message
        metrics?.kafkaSendFailures.inc()
        const level = failures === 1 || failures % 10 === 0 ? 'warn' : 'debug'
        logger[level]({ event: 'kafka_send_failed', failures, pendingRecords: pending.length, lagRecords: spool.unshippedRecords, err: e.message },
          'Kafka unavailable: uplinks stay in the spool and are sent again')
        // A topic deleted behind our back is created again.
        if (types.includes('UNKNOWN_TOPIC_OR_PARTITION')) topicsReady = false
        if (failures % recreateAfter === 0) await dropProducer()
        const delay = backoffMs()
        await sleep(draining ? Math.min(delay, Math.max(0, deadline - Date.now())) : delay, draining ? stop.signal : AbortSignal.any([wake.signal, stop.signal]))
        if (draining && Date.now() >= deadline) break
      }
    }
  }

  return {
    start () {
      if (loop !== undefined) return
      loop = run().catch((err: Error) => {
        logger.fatal({ event: 'kafka_shipper_crashed', err: err.message, stack: err.stack }, 'Kafka shipper stopped unexpectedly: uplinks stay in the spool')
      })
    },

    status () {
      const oldest = pending[0]
      return {
        connected,
        topicsReady,
        lagRecords: spool.unshippedRecords,
        lagBytes: spool.unshippedBytes,
        lagSeconds: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest.receivedAt) / 1000),
        consecutiveFailures: failures,
        lastError,
        shippedRecords
      }
    },

    async close (drainMs = 2000) {
      if (draining) return
      draining = true
      deadline = Date.now() + drainMs
      wake.abort()
      if (loop !== undefined) {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([loop, new Promise<void>((resolve) => { timer = setTimeout(resolve, drainMs) })])
        clearTimeout(timer)
      }
      stop.abort()
      // A send still in flight fails when its connection closes; its records stay in the spool.
      await dropProducer()
      if (loop !== undefined) await Promise.race([loop, sleep(1000, new AbortController().signal)])
      await reader?.close()
      const left = spool.unshippedRecords
      if (left > 0) logger.warn({ event: 'kafka_shipper_stopped', unshippedRecords: left }, 'stopped with uplinks not yet in Kafka: they stay in the spool and are shipped after the next start')
    }
  }
}
