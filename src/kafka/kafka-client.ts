import { Kafka, logLevel, type Admin, type ITopicConfig, type LogEntry, type RetryOptions } from 'kafkajs'
import type { Logger } from 'pino'
import { installRecordEncoding } from './record-encoding.ts'

// kafkajs behind one factory: its logs go to pino, records are encoded by ./record-encoding.ts, and topics are
// created explicitly (auto-creation is off).

export interface KafkaClientOptions {
  readonly brokers: readonly string[]
  readonly clientId: string
  readonly logger: Logger
  /** Retries of connects and requests inside kafkajs (defaults: 5, 300 ms doubling to 30 s). */
  readonly retry?: RetryOptions
}

export function createKafka (opts: KafkaClientOptions): Kafka {
  const log = opts.logger.child({ component: 'kafka' })
  if (installRecordEncoding() === 'too-late') {
    log.warn({ event: 'kafka_record_encoding' }, 'kafkajs built a produce request before the lean record encoder was installed: it keeps its own (same bytes, more CPU)')
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

/** Creates the topics that do not exist yet and waits for their leaders. */
export async function ensureTopics (admin: Admin, topics: readonly ITopicConfig[]): Promise<string[]> {
  const existing = new Set(await admin.listTopics())
  const missing = topics.filter((t) => !existing.has(t.topic))
  if (missing.length > 0) await admin.createTopics({ topics: [...missing], waitForLeaders: true })
  return missing.map((t) => t.topic)
}
