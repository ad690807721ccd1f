import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config, RedisTarget } from '../config/load-config.ts'
import type { ConnectionControl, KickReason, KickTarget } from '../registry/connection-control.ts'
import { closeRedis, createRedis } from '../shared/redis.ts'
import { createRedisConnectionControl } from './redis-connection-control.ts'

// How this process's registry reaches devices' connections: in embedded mode straight to the node's own
// kicks, in cluster mode through Redis pub/sub to every node (a broker node also subscribes, on a connection
// of its own, to deliver other processes' kicks to its own).

export interface ConnectionControlOptions {
  readonly config: Config
  /** The main connection; undefined in embedded mode. */
  readonly redis: Redis | undefined
  readonly runsBroker: boolean
  readonly logger: Logger
  readonly kickLocal: (deviceId: string, reason: KickReason, target?: KickTarget) => void
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
}

export async function openConnectionControl (opts: ConnectionControlOptions): Promise<ConnectionControl> {
  const { config, redis, logger, kickLocal } = opts
  if (redis === undefined) return { kick: async (deviceId, reason, target) => { kickLocal(deviceId, reason, target) } }
  const subscriber = opts.runsBroker ? createRedis(config.redis as RedisTarget, logger, `pushline:${config.nodeId}:kicks`) : undefined
  const control = createRedisConnectionControl({ publisher: redis, subscriber, channel: `${config.redisPrefix}kick`, kickLocal, logger })
  await control.start()
  opts.onClose('connection control', async () => { await control.close(); if (subscriber !== undefined) await closeRedis(subscriber) })
  return control
}
