import MQEmitterRedis from 'mqemitter-redis'
import redisPersistence from 'aedes-persistence-redis'
import type { Logger } from 'pino'
import { lookUpRetainedInOneRoundTrip } from '../broker/aedes/look-up-retained-in-one-round-trip.ts'
import type { RedisTarget } from '../config/load-config.ts'
import { createRedis } from '../shared/redis.ts'
import { prefixChannels } from '../shared/ioredis/prefix-pubsub-channels.ts'
import { quitOrDisconnect } from '../shared/ioredis/quit-or-disconnect.ts'
import { stateOf } from './mqemitter-redis-state.ts'

// What aedes shares between nodes through Redis: routing (mqemitter-redis) and sessions (aedes-persistence-redis).
// The transport owns the three Redis connections, so it can cut them at close even when Redis is unreachable
// (the libraries' own close paths wait for Redis and would hold the process open).

export interface RedisTransport {
  readonly mq: unknown
  readonly persistence: ReturnType<typeof redisPersistence>
  /** False while the subscriber connection is down: messages published meanwhile never reach this node. */
  subscriberReady (): boolean
  close (): Promise<void>
}

export interface SubscriberGap {
  readonly startedAt: number
  readonly endedAt: number
}

const GRACEFUL_MS = 1000

export interface RedisTransportOptions {
  readonly target: RedisTarget
  /** PUSHLINE_REDIS_PREFIX: session keys go under `{prefix}aedes:`, pub/sub channels under `{prefix}mq:`. */
  readonly prefix: string
  readonly nodeId: string
  readonly logger: Logger
  /** Called when the subscriber connection is back after a loss (ioredis has resubscribed every topic). */
  readonly onSubscriberGap?: (gap: SubscriberGap) => void
}

export function createRedisTransport (opts: RedisTransportOptions): RedisTransport {
  const { logger } = opts
  const name = (role: string): string => `pushline:${opts.nodeId}:${role}`
  const pubConn = createRedis(opts.target, logger, name('mq-pub'), { commandTimeoutMs: 10_000 })
  // A subscriber connection runs no request/response commands worth timing out.
  const subConn = createRedis(opts.target, logger, name('mq-sub'), { commandTimeoutMs: 0 })
  // Neither library prefixes anything: without these, two deployments on one Redis (each with its own
  // PUSHLINE_REDIS_PREFIX) shared sessions and messages, and a device connecting to one kicked the device with the
  // same id off the other (aedes's $SYS/{node}/new/clients announcement reaches every node on the channel).
  const persistenceConn = createRedis(opts.target, logger, name('persistence'), { commandTimeoutMs: 10_000, keyPrefix: `${opts.prefix}aedes:` })
  prefixChannels(pubConn, subConn, `${opts.prefix}mq:`)
  for (const conn of [pubConn, subConn]) quitOrDisconnect(conn)
  // concurrency 0: no per-node delivery slots, so one frozen subscriber cannot stall the node (docs/design.md, "A frozen subscriber stalls a node").
  const mq = MQEmitterRedis({ subConn, pubConn, concurrency: 0 })
  // Without this listener a Redis error inside mqemitter-redis crashes the process.
  stateOf(mq).on('error', (err: Error) => { logger.warn({ event: 'mq_redis_error', err: err.message }, 'mqemitter-redis error') })
  const persistence = lookUpRetainedInOneRoundTrip(redisPersistence({ conn: persistenceConn }), persistenceConn)

  // Pub/sub is at most once: whatever Redis published while the subscriber connection was down is gone for
  // this node (docs/design.md: Redis's output-buffer limit drops busy subscribers). Track the gap so the
  // node reports not-ready, counts it, and can resend what persistent sessions have stored.
  let ready = false
  let closing = false
  let gapStart: number | undefined
  subConn.on('ready', () => {
    ready = true
    if (gapStart !== undefined) {
      const gap = { startedAt: gapStart, endedAt: Date.now() }
      gapStart = undefined
      logger.warn({ event: 'pubsub_gap', ms: gap.endedAt - gap.startedAt }, 'redis subscriber connection was lost and is back: messages published meanwhile may not have reached this node')
      opts.onSubscriberGap?.(gap)
    }
  })
  subConn.on('close', () => {
    if (ready && !closing) gapStart = Date.now()
    ready = false
  })

  // Redis must not cut busy subscribers (docs/configuration.md, Modes). Warn when it would (managed Redis may refuse CONFIG: then say nothing).
  pubConn.call('CONFIG', 'GET', 'client-output-buffer-limit').then((reply) => {
    const value = Array.isArray(reply) ? String(reply[1]) : ''
    const m = /pubsub (\d+) (\d+) (\d+)/.exec(value)
    if (m !== null && (m[1] !== '0' || m[2] !== '0')) {
      logger.warn({ event: 'redis_pubsub_limit', value: m[0] }, 'Redis has a pub/sub output-buffer limit: under load it drops a busy node\'s subscriber connection. Set client-output-buffer-limit pubsub 0 0 0')
    }
  }, () => {})

  return {
    mq,
    persistence,
    subscriberReady: () => ready,
    async close () {
      closing = true
      // aedes closed the mq in broker.close(); the persistence is ours to destroy. Either may wait on Redis.
      await Promise.race([Promise.resolve(persistence.destroy()).catch(() => {}), new Promise((resolve) => setTimeout(resolve, GRACEFUL_MS).unref())])
      for (const conn of [persistenceConn, subConn, pubConn]) conn.disconnect()
    }
  }
}
