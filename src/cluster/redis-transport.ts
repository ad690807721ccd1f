import MQEmitterRedis from 'mqemitter-redis'
import redisPersistence from 'aedes-persistence-redis'
import type { Logger } from 'pino'
import { createRedis } from '../shared/redis.ts'

// What aedes shares between nodes through Redis: routing (mqemitter-redis) and sessions (aedes-persistence-redis).
// The transport owns the three Redis connections, so it can cut them at close even when Redis is unreachable
// (the libraries' own close paths wait for Redis and would hold the process open).

export interface RedisTransport {
  readonly mq: unknown
  readonly persistence: ReturnType<typeof redisPersistence>
  close (): Promise<void>
}

const GRACEFUL_MS = 1000

export function createRedisTransport (opts: { url: string, nodeId: string, logger: Logger }): RedisTransport {
  const { logger } = opts
  const name = (role: string): string => `pushline:${opts.nodeId}:${role}`
  const pubConn = createRedis(opts.url, logger, name('mq-pub'), { commandTimeoutMs: 10_000 })
  // A subscriber connection runs no request/response commands worth timing out.
  const subConn = createRedis(opts.url, logger, name('mq-sub'), { commandTimeoutMs: 0 })
  const persistenceConn = createRedis(opts.url, logger, name('persistence'), { commandTimeoutMs: 10_000 })
  // mqemitter-redis's close() calls quit() on both and leaves the promise unhandled: with Redis down that is an
  // unhandled rejection. Make quit fall back to a hard disconnect, which still ends the connection.
  for (const conn of [pubConn, subConn]) {
    const quit = conn.quit.bind(conn)
    ;(conn as unknown as { quit: () => Promise<string> }).quit = () => quit().catch(() => { conn.disconnect(); return 'OK' })
  }
  // concurrency 0: no per-node delivery slots, so one frozen subscriber cannot stall the node (research/aedes.md §5).
  const mq = MQEmitterRedis({ subConn, pubConn, concurrency: 0 })
  // Without this listener a Redis error inside mqemitter-redis crashes the process.
  const state = (mq as unknown as { state: NodeJS.EventEmitter }).state
  state.on('error', (err: Error) => { logger.warn({ event: 'mq_redis_error', err: err.message }, 'mqemitter-redis error') })
  const persistence = redisPersistence({ conn: persistenceConn })
  return {
    mq,
    persistence,
    async close () {
      // aedes closed the mq in broker.close(); the persistence is ours to destroy. Either may wait on Redis.
      await Promise.race([Promise.resolve(persistence.destroy()).catch(() => {}), new Promise((resolve) => setTimeout(resolve, GRACEFUL_MS).unref())])
      for (const conn of [persistenceConn, subConn, pubConn]) conn.disconnect()
    }
  }
}
