import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { createPresenceEvents, type PresenceEvents } from '../cluster/presence-events.ts'
import type { Config } from '../config/load-config.ts'
import { createKafka } from '../kafka/kafka-client.ts'
import { shipperSettings } from '../kafka/shipper-settings.ts'
import { openFileSpool, type FileSpool } from './file-spool.ts'
import { createKafkaShipper, type KafkaShipper } from './kafka-shipper.ts'
import type { UplinkMetrics } from './uplink-metrics.ts'

// The uplink bridge of a broker node: the spool in <data dir>/spool that takes every uplink durably, and with
// Kafka the shipper that tails it to the telemetry topic and the node's presence events. Its closers go to
// onClose in opening order, so that they run in reverse: the presence events and the shipper stop before the
// spool, and all of them after the broker (opened later) has stopped appending.

/** How long a stop keeps shipping spooled uplinks to Kafka; the rest ships after the next start. */
const SHIPPER_DRAIN_MS = 2000
/** How long a stop keeps sending queued presence events. */
const PRESENCE_DRAIN_MS = 1000

export interface UplinkBridge {
  readonly spool: FileSpool
  readonly spoolDir: string
  /** Undefined without PUSHLINE_KAFKA_BROKERS. */
  readonly shipper: KafkaShipper | undefined
  readonly presenceEvents: PresenceEvents | undefined
}

export interface UplinkBridgeOptions {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: UplinkMetrics
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
}

export async function openUplinkBridge (opts: UplinkBridgeOptions): Promise<UplinkBridge> {
  const { config, logger, metrics } = opts
  const spoolDir = join(resolve(config.dataDir), 'spool')
  const spool = await openFileSpool({
    dir: spoolDir,
    fsync: config.spoolFsync,
    segmentBytes: config.spoolSegmentBytes,
    maxBytes: config.spoolMaxBytes,
    logger: logger.child({ component: 'spool' }),
    onFlush: (records, bytes) => { metrics.spoolRecords.inc(records); metrics.spoolBytes.inc(bytes) },
    onDrop: () => { metrics.uplinksDropped.inc({ reason: 'spool_full' }) },
    onWait: () => { metrics.spoolWaits.inc() }
  })
  opts.onClose('spool', () => spool.close())

  const kafka = config.kafkaBrokers === undefined
    ? undefined
    : createKafka({
      brokers: config.kafkaBrokers,
      clientId: `pushline-${config.nodeId}`,
      logger,
      // Connects fail fast: the shipper's own back-off paces the attempts while Kafka is away.
      retry: { retries: 2, maxRetryTime: 5000 }
    })
  const shipper = kafka === undefined
    ? undefined
    : createKafkaShipper({
      kafka,
      spool,
      logger: logger.child({ component: 'kafka-shipper' }),
      metrics,
      telemetryTopic: config.kafkaTelemetryTopic,
      topics: [
        { topic: config.kafkaTelemetryTopic, numPartitions: config.kafkaTelemetryPartitions, replicationFactor: config.kafkaReplicationFactor },
        { topic: config.kafkaPresenceTopic, numPartitions: config.kafkaPresencePartitions, replicationFactor: config.kafkaReplicationFactor }
      ],
      ...shipperSettings(config),
      deadLetterPath: join(spoolDir, 'dead-letter.jsonl')
    })
  if (shipper !== undefined) {
    shipper.start()
    opts.onClose('kafka shipper', () => shipper.close(SHIPPER_DRAIN_MS))
  }
  const presenceEvents = kafka === undefined
    ? undefined
    : createPresenceEvents({
      kafka,
      topic: config.kafkaPresenceTopic,
      logger: logger.child({ component: 'presence-events' }),
      onSent: (n) => metrics.presenceEvents.inc(n),
      onDropped: (n) => metrics.presenceEventsDropped.inc(n)
    })
  if (presenceEvents !== undefined) opts.onClose('presence events', () => presenceEvents.close(PRESENCE_DRAIN_MS))

  metrics.readBridgeFrom(() => {
    const k = shipper?.status()
    return { unshippedRecords: spool.unshippedRecords, unshippedBytes: spool.unshippedBytes, kafkaConnected: k?.connected, lagSeconds: k?.lagSeconds }
  })
  return { spool, spoolDir, shipper, presenceEvents }
}
