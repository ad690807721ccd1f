import type { Logger } from 'pino'
import type { Config } from '../config/load-config.ts'
import type { RedisMetrics } from '../metrics/redis-metrics.ts'
import { closeRedis, createRedis } from './redis.ts'
import { createReplicaWait } from './replica-wait.ts'

/**
 * With PUSHLINE_REDIS_WAIT_REPLICAS (cluster mode): what a device creation or a push awaits before it is
 * answered. Undefined otherwise: answers do not wait.
 */
export function openReplicaWait (opts: {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Pick<RedisMetrics, 'redisWaitSeconds' | 'redisWaitTimeouts'>
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
}): (() => Promise<void>) | undefined {
  const { config, logger, metrics } = opts
  if (config.redis === undefined || config.redisWaitReplicas === 0) return undefined
  // WAIT blocks its connection: it gets one of its own, with room for the wait in its command timeout.
  const redis = createRedis(config.redis, logger, `pushline:${config.nodeId}:wait`, { commandTimeoutMs: config.redisWaitTimeoutMs + 2000 })
  opts.onClose('redis replica wait', () => closeRedis(redis))
  const wait = createReplicaWait({
    redis,
    markerKey: `${config.redisPrefix}replica-wait`,
    replicas: config.redisWaitReplicas,
    timeoutMs: config.redisWaitTimeoutMs,
    logger,
    onRound: ({ acked, wanted, ms }) => {
      metrics.redisWaitSeconds.observe(ms / 1000)
      if (acked < wanted) metrics.redisWaitTimeouts.inc()
    }
  })
  return () => wait.confirm()
}
