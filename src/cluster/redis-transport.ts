import type { Redis } from 'ioredis'
import MQEmitterRedis from 'mqemitter-redis'
import redisPersistence from 'aedes-persistence-redis'
import type { Logger } from 'pino'

// What aedes shares between nodes through Redis: routing (mqemitter-redis) and sessions (aedes-persistence-redis).

export interface RedisTransport {
  readonly mq: unknown
  readonly persistence: ReturnType<typeof redisPersistence>
  close (): Promise<void>
}

export function createRedisTransport (opts: { url: string, persistenceConn: Redis, logger: Logger }): RedisTransport {
  const { logger } = opts
  // concurrency 0: no per-node delivery slots, so one frozen subscriber cannot stall the node (research/aedes.md §5).
  const mq = MQEmitterRedis({ connectionString: opts.url, concurrency: 0 })
  // Without these listeners a Redis error inside mqemitter-redis crashes the process.
  const state = (mq as unknown as { state: NodeJS.EventEmitter }).state
  state.on('error', (err: Error) => { logger.warn({ event: 'mq_redis_error', err: err.message }, 'mqemitter-redis error') })
  const persistence = redisPersistence({ conn: opts.persistenceConn })
  return {
    mq,
    persistence,
    async close () {
      // aedes closes the mq itself in broker.close(); the persistence is ours to destroy.
      await Promise.resolve(persistence.destroy()).catch(() => {})
    }
  }
}
