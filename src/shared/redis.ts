import type { Duplex } from 'node:stream'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { coalesceWrites } from './coalesce-writes.ts'

/**
 * An ioredis client that never crashes the process: errors are logged (once per outage), and commands fail
 * within `commandTimeoutMs` (0: no timeout) during an outage instead of queueing forever, so callers can answer "unavailable".
 * The commands of one event loop turn leave in one write (coalesce-writes.ts).
 */
export function createRedis (url: string, logger: Logger, name: string, opts: { commandTimeoutMs?: number, keyPrefix?: string } = {}): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    ...(opts.keyPrefix !== undefined && { keyPrefix: opts.keyPrefix }),
    // Not ioredis's auto-pipelining: it batches only within one tick, and its Pipeline objects were a third of
    // the broker's allocations in a burst of connects. Holding the rest of a turn's writes after its first
    // (coalesce-writes.ts) batches more for less.
    maxRetriesPerRequest: 1,
    ...(opts.commandTimeoutMs !== 0 && { commandTimeout: opts.commandTimeoutMs ?? 2000 }),
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false
  })
  // ioredis makes a new socket on every (re)connect.
  redis.on('connect', () => { coalesceWrites((redis as unknown as { stream: Duplex }).stream) })
  let down = false
  redis.on('error', (err: Error) => {
    if (!down) logger.warn({ event: 'redis_error', connection: name, err: err.message }, 'redis connection error')
    down = true
  })
  redis.on('ready', () => {
    if (down) logger.info({ event: 'redis_ready', connection: name }, 'redis connection back')
    down = false
  })
  return redis
}

/** Quits politely, or disconnects when Redis does not answer. */
export async function closeRedis (redis: Redis): Promise<void> {
  if (redis.status === 'end') return
  try {
    await Promise.race([redis.quit(), new Promise((_resolve, reject) => setTimeout(() => reject(new Error('quit timed out')), 1000).unref())])
  } catch {
    redis.disconnect()
  }
}
