import type { Admin, ITopicConfig, Kafka, LogEntry, RetryOptions } from 'kafkajs'
import type { Logger } from 'pino'
import { loadKafkajs } from './kafkajs-module.ts'
import { installProduceRequestEncoding } from './produce-request-encoding.ts'

// kafkajs behind one factory: its logs go to pino, produce requests are encoded by ./produce-request-encoding.ts,
// messages are grouped by partition by ./group-messages-per-partition.ts, requests are framed by
// ./request-framing.ts, and topics are created explicitly (auto-creation is off).

export interface KafkaClientOptions {
  readonly brokers: readonly string[]
  readonly clientId: string
  readonly logger: Logger
  /** Retries of connects and requests inside kafkajs (defaults: 5, 300 ms doubling to 30 s). */
  readonly retry?: RetryOptions
}

export function createKafka (opts: KafkaClientOptions): Kafka {
  const log = opts.logger.child({ component: 'kafka' })
  const { kafkajs, grouping, framing } = loadKafkajs()
  const { Kafka, logLevel } = kafkajs
  if (grouping === 'too-late') {
    log.warn({ event: 'kafka_group_messages' }, 'kafkajs loaded before the linear grouping of messages by partition was installed: it keeps its own (same result, more CPU)')
  }
  if (framing === 'too-late') {
    log.warn({ event: 'kafka_request_framing' }, 'kafkajs loaded before the one-copy request framing was installed: it keeps its own (same bytes, more CPU)')
  }
  if (installProduceRequestEncoding() === 'too-late') {
    log.warn({ event: 'kafka_produce_encoding' }, 'kafkajs built a produce request before the lean produce encoder was installed: it keeps its own (same bytes, more CPU)')
  }
  return new Kafka({
    clientId: opts.clientId,
    brokers: [...opts.brokers],
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 300, maxRetryTime: 30_000, retries: 5, ...opts.retry },
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry
      const fields = { event: 'kafka_log', ...rest }
      if (level <= logLevel.ERROR) log.error(fields, message)
      else if (level === logLevel.WARN) log.warn(fields, message)
      else log.debug(fields, message)
    }
  })
}

/** A topic a node creates when missing; without a replication factor it gets topicReplication()'s. */
export interface TopicSpec {
  readonly topic: string
  readonly numPartitions: number
  readonly replicationFactor?: number | undefined
}

/**
 * Replication of a topic a node creates: `configured`, or 3 and fewer only when the cluster has fewer brokers.
 * With 3 or more replicas an acknowledged write (acks all) is on at least 2 of them, so losing any one broker loses
 * nothing acknowledged and writes go on.
 */
export function topicReplication (brokers: number, configured: number | undefined): Pick<ITopicConfig, 'replicationFactor' | 'configEntries'> {
  const replicationFactor = configured ?? Math.max(1, Math.min(3, brokers))
  return { replicationFactor, configEntries: replicationFactor >= 3 ? [{ name: 'min.insync.replicas', value: '2' }] : [] }
}

/** Creates the topics that do not exist yet and waits for their leaders. */
export async function ensureTopics (admin: Admin, topics: readonly TopicSpec[]): Promise<string[]> {
  const existing = new Set(await admin.listTopics())
  const missing = topics.filter((t) => !existing.has(t.topic))
  if (missing.length === 0) return []
  const { brokers } = await admin.describeCluster()
  await admin.createTopics({
    topics: missing.map((t) => ({ topic: t.topic, numPartitions: t.numPartitions, ...topicReplication(brokers.length, t.replicationFactor) })),
    waitForLeaders: true
  })
  return missing.map((t) => t.topic)
}
