import type { Client } from 'aedes'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { BrokerNode } from '../broker/create-broker-node.ts'
import type { Config, RedisTarget } from '../config/load-config.ts'
import type { Metrics } from '../metrics/metrics.ts'
import { closeRedis, createRedis } from '../shared/redis.ts'
import type { DeviceStore } from '../stores/device-store.ts'
import type { HistoryStore } from '../stores/history-store.ts'
import { createMemoryBroadcastStore } from '../stores/memory-broadcast-store.ts'
import { createMemoryHistoryStore } from '../stores/memory-history-store.ts'
import { createMemoryPushJobStore } from '../stores/memory-push-job-store.ts'
import { createMemoryReceiptStore } from '../stores/memory-receipt-store.ts'
import type { PresenceStore } from '../stores/presence-store.ts'
import { createRedisBroadcastStore } from '../stores/redis-broadcast-store.ts'
import { createRedisHistoryStore } from '../stores/redis-history-store.ts'
import { createRedisPushJobStore } from '../stores/redis-push-job-store.ts'
import { createRedisReceiptStore } from '../stores/redis-receipt-store.ts'
import { countReceipts } from './counted-receipt-store.ts'
import { createLocalDeliveryChannel } from './delivery-channel.ts'
import { createPushAgent, type PushAgent } from './push-agent.ts'
import { createPushService, type PushService } from './push-service.ts'
import { createRedisDeliveryChannel } from './redis-delivery-channel.ts'
import type { OpenedReceiptJournal } from './receipt-journal.ts'
import type { ReceiptStream } from './receipt-stream.ts'
import { recoverReceipts, streamJobReceipts, streamReceipts, type StreamReceiptsOptions } from './streamed-receipt-store.ts'

// Wires the push parts for main.ts (kept apart so the composition root gains only a few lines):
// stores (memory or Redis), the delivery channel (local in embedded mode, Redis pub/sub in cluster mode),
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
  readonly devices: DeviceStore
  readonly presence: PresenceStore
  readonly metrics: Pick<Metrics, 'receipts' | 'downlinks' | 'downlinksDelivered'>
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
  /** Where records of the receipt transitions this process makes go; none: no records. */
  readonly receiptStream?: ReceiptStream
  /** With the stream: intents are journaled, and those a killed run left open are recovered at start. */
  readonly receiptJournal?: OpenedReceiptJournal
}

export interface PushStack {
  readonly service: PushService | undefined
  /** Each device's downlink history (the registry forgets a deleted device's). */
  readonly history: HistoryStore
  /** Options for createBrokerNode: PUBACKs and application acks go to the agent. */
  readonly brokerHooks: {
    readonly onPuback: (client: Client, messageId: number) => boolean
    readonly onDeviceAck: (deviceId: string, payload: Buffer) => void
  }
  startAgent (broker: BrokerNode): Promise<void>
}

export async function createPushStack (opts: PushStackOptions): Promise<PushStack> {
  const { config, redis, logger } = opts
  const prefix = config.redisPrefix
  const limits = { maxMessages: config.historyMaxMessages, maxAgeMs: config.historyMaxAgeSeconds * 1000 }
  const history = redis === undefined ? createMemoryHistoryStore(limits) : createRedisHistoryStore({ redis, prefix, limits })
  const counted = countReceipts(redis === undefined ? createMemoryReceiptStore() : createRedisReceiptStore({ redis, prefix }), opts.metrics.receipts)
  const broadcasts = redis === undefined ? createMemoryBroadcastStore() : createRedisBroadcastStore({ redis, prefix })
  // The memory job store opens receipts through `counted`, not through the streamed store: the job store's own
  // wrapper writes the records of a chunk's receipts, once.
  const storedJobs = redis === undefined ? createMemoryPushJobStore({ devices: opts.devices, history, receipts: counted }) : createRedisPushJobStore({ redis, prefix, limits })
  const crashAt = config.testCrashAfterReceiptCommit
  const streamed: StreamReceiptsOptions | undefined = opts.receiptStream === undefined
    ? undefined
    : {
        stream: opts.receiptStream,
        nodeId: config.nodeId,
        ...(opts.receiptJournal !== undefined && { journal: opts.receiptJournal.journal }),
        ...(crashAt !== undefined && { afterCommit: (states: readonly string[]) => { if (states.includes(crashAt)) process.kill(process.pid, 'SIGKILL') } })
      }
  const receipts = streamed === undefined ? counted : streamReceipts(counted, streamed)
  const jobs = streamed === undefined ? storedJobs : streamJobReceipts(storedJobs, counted, streamed)
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
      devices: opts.devices,
      presence: opts.presence,
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
    history,
    brokerHooks: {
      onPuback: (client, messageId) => agent?.onPuback(client, messageId) ?? false,
      onDeviceAck: (deviceId, payload) => { agent?.onDeviceAck(deviceId, payload) }
    },
    async startAgent (broker) {
      const a = createPushAgent({ nodeId: config.nodeId, logger, history, receipts, broadcasts, channel, metrics: opts.metrics })
      agent = a
      await a.start(broker)
      opts.onClose('push agent', () => a.close())
    }
  }
}
