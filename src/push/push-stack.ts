import type { Client } from 'aedes'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { BrokerNode } from '../broker/create-broker-node.ts'
import type { Config, RedisTarget } from '../config/load-config.ts'
import { PushlineError } from '../shared/errors.ts'
import { closeRedis, createRedis } from '../shared/redis.ts'
import type { Stores } from '../stores/create-stores.ts'
import { createLocalDeliveryChannel } from './delivery-channel.ts'
import { createPushAgent, type PushAgent } from './push-agent.ts'
import type { PushMetrics } from './push-metrics.ts'
import { createPushService, type PushService } from './push-service.ts'
import { createRedisDeliveryChannel } from './redis-delivery-channel.ts'
import type { OpenedReceiptJournal } from './receipt-journal.ts'
import type { ReceiptStream } from './receipt-stream.ts'
import { recoverReceipts, streamJobReceipts, streamReceipts, type StreamReceiptsOptions } from './streamed-receipt-store.ts'

// Wires the push parts for main.ts (kept apart so the composition root gains only a few lines):
// the receipt records' wrappers over the stores, the delivery channel (local in embedded mode, Redis pub/sub in cluster mode),
// the push service (API processes) and the push agent (broker processes).

export interface PushStackOptions {
  readonly config: Config
  readonly redis: Redis | undefined
  /** Waits for the Redis replicas before a push is answered (replica-wait.ts). */
  readonly confirmWrites: (() => Promise<void>) | undefined
  readonly runsBroker: boolean
  readonly servesApi: boolean
  /** Called for every downlink the node's push agent writes. */
  readonly logger: Logger
  /** The receipt store counts its transitions already (createStores' wrapReceipts). */
  readonly stores: Pick<Stores, 'devices' | 'presence' | 'history' | 'receipts' | 'broadcasts' | 'jobs'>
  readonly metrics: Pick<PushMetrics, 'downlinks' | 'downlinksDelivered'>
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
  /** Where records of the receipt transitions this process makes go; none: no records. */
  readonly receiptStream?: ReceiptStream
  /** With the stream: intents are journaled, and those a killed run left open are recovered at start. */
  readonly receiptJournal?: OpenedReceiptJournal
}

export interface PushStack {
  readonly service: PushService | undefined
  /** Options for createBrokerNode: PUBACKs and application acks go to the agent. */
  readonly brokerHooks: {
    readonly onPuback: (client: Client, messageId: number) => boolean
    readonly onDeviceAck: (deviceId: string, payload: Buffer) => Promise<void>
  }
  startAgent (broker: BrokerNode): Promise<void>
}

export async function createPushStack (opts: PushStackOptions): Promise<PushStack> {
  const { config, redis, logger } = opts
  const prefix = config.redisPrefix
  const { history, broadcasts } = opts.stores
  // Counts its transitions already (createStores' wrapReceipts).
  const counted = opts.stores.receipts
  const crashAt = config.testCrashAfterReceiptCommit
  const streamed: StreamReceiptsOptions | undefined = opts.receiptStream === undefined
    ? undefined
    : {
        stream: opts.receiptStream,
        nodeId: config.nodeId,
        logger,
        ...(opts.receiptJournal !== undefined && { journal: opts.receiptJournal.journal }),
        ...(crashAt !== undefined && { afterCommit: (states: readonly string[]) => { if (states.includes(crashAt)) process.kill(process.pid, 'SIGKILL') } })
      }
  const receipts = streamed === undefined ? counted : streamReceipts(counted, streamed)
  const jobs = streamed === undefined ? opts.stores.jobs : streamJobReceipts(opts.stores.jobs, counted, streamed)
  if (streamed !== undefined && opts.receiptJournal !== undefined && opts.receiptJournal.leftOpen.length > 0) {
    const { journal, leftOpen } = opts.receiptJournal
    // Not awaited: Redis may be away at start; intents whose check fails stay open for the next start.
    recoverReceipts(counted, { ...streamed, journal }, leftOpen).then(
      (records) => { logger.warn({ event: 'receipt_records_recovered', intents: leftOpen.length, records }, 'receipt transitions of a killed run recovered into the receipts stream') },
      (err: Error) => { logger.error({ event: 'receipt_recovery_failed', intents: leftOpen.length, err: err.message }, 'receipt transitions of a killed run not recovered; tried again at the next start') }
    )
  }

  let channel
  if (redis === undefined) {
    channel = createLocalDeliveryChannel()
  } else {
    const subscriber = opts.runsBroker ? createRedis(config.redis as RedisTarget, logger, `pushline:${config.nodeId}:push`) : undefined
    if (subscriber !== undefined) opts.onClose('push subscriber', () => closeRedis(subscriber))
    channel = createRedisDeliveryChannel({ publisher: redis, subscriber, prefix, logger })
  }

  let service: PushService | undefined
  if (opts.servesApi) {
    const s = createPushService({
      devices: opts.stores.devices,
      presence: opts.stores.presence,
      history,
      receipts,
      broadcasts,
      jobs,
      channel,
      logger,
      owner: `${config.nodeId}-${process.pid}`,
      maxTtlSeconds: config.pushMaxTtlSeconds,
      maxDataBytes: config.pushMaxDataBytes,
      maxLiveBroadcasts: config.pushMaxLiveBroadcasts,
      ...(opts.confirmWrites !== undefined && { confirmWrites: opts.confirmWrites })
    })
    service = s
    opts.onClose('push jobs', () => s.close())
  }

  let agent: PushAgent | undefined
  return {
    service,
    brokerHooks: {
      onPuback: (client, messageId) => agent?.onPuback(client, messageId) ?? false,
      // An ack that arrives before the agent runs is refused, not dropped: the device sends it again.
      onDeviceAck: async (deviceId, payload) => {
        if (agent === undefined) throw new PushlineError('IOT_ERR_UNAVAILABLE', 'the push agent has not started')
        await agent.onDeviceAck(deviceId, payload)
      }
    },
    async startAgent (broker) {
      const a = createPushAgent({ nodeId: config.nodeId, logger, history, receipts, broadcasts, channel, metrics: opts.metrics })
      agent = a
      await a.start(broker)
      opts.onClose('push agent', () => a.close())
    }
  }
}
