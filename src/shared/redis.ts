import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisTarget } from '../config/load-config.ts'
import { coalesceWrites } from './ioredis/coalesce-socket-writes.ts'
import { socketOf } from './ioredis/internals.ts'
import { timeOutUnansweredCommands } from './ioredis/time-out-unanswered-commands.ts'

export interface CreateRedisOptions {
  /** Commands fail after this long instead of waiting for Redis (0: no timeout). Default: the target's (PUSHLINE_REDIS_COMMAND_TIMEOUT_MS). */
  readonly commandTimeoutMs?: number
  readonly keyPrefix?: string
}

/** Where the connection goes: one server by URL, or the primary the Sentinels name. */
function targetOptions (target: RedisTarget): { url?: string, options: RedisOptions } {
  if (target.kind === 'url') {
    if (target.password === undefined) return { url: target.url, options: {} }
    // ioredis lets a password in the URL win over the option; the setting is meant to win.
    const url = new URL(target.url)
    url.password = encodeURIComponent(target.password)
    return { url: url.toString(), options: {} }
  }
  return {
    options: {
      sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
      name: target.master,
      role: 'master',
      ...(target.password !== undefined && { password: target.password }),
      ...(target.sentinelPassword !== undefined && { sentinelPassword: target.sentinelPassword }),
      // Not ioredis's failoverDetector (a subscription to +switch-master on every Sentinel, per connection): a
      // failover test saw it end a connection that was reconnecting at the moment of the switch, for good. A dead
      // primary's sockets close, and a demoted one closes its clients' connections itself (or answers READONLY below).
      // While every Sentinel is unreachable, keep asking (ioredis gives up by default after a few rounds).
      sentinelRetryStrategy: (times) => Math.min(100 * times, 2000)
    }
  }
}

/**
 * The only way Pushline opens Redis: its own connections, aedes-persistence-redis's, mqemitter-redis's and the
 * pub/sub subscribers all come from here, so each one follows a Sentinel failover the same way.
 * The client never crashes the process: errors are logged (once per outage), and commands fail within
 * `commandTimeoutMs` during an outage or a failover instead of queueing forever, so callers can answer "unavailable".
 * The commands of one event loop turn leave in one write (ioredis/coalesce-socket-writes.ts), and a command times out
 * only if its reply is still missing once the socket's pending replies are read (ioredis/time-out-unanswered-commands.ts).
 */
export function createRedis (target: RedisTarget, logger: Logger, name: string, opts: CreateRedisOptions = {}): Redis {
  const { url, options } = targetOptions(target)
  const all: RedisOptions = {
    ...options,
    connectionName: name,
    ...(opts.keyPrefix !== undefined && { keyPrefix: opts.keyPrefix }),
    // Not ioredis's auto-pipelining: it batches only within one tick, and its Pipeline objects were a third of
    // the broker's allocations in a burst of connects. Holding the rest of a turn's writes after its first
    // (ioredis/coalesce-socket-writes.ts) batches more for less.
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    // A write that reaches a demoted primary (a failover the client has not noticed yet) is refused with READONLY:
    // reconnect, which asks the Sentinels again, and send it once more.
    reconnectOnError: (err) => err.message.startsWith('READONLY') ? 2 : false,
    lazyConnect: false
  }
  const redis = url === undefined ? new Redis(all) : new Redis(url, all)
  // Not ioredis's commandTimeout: after a stall of this process it rejected commands whose replies had arrived.
  const timeoutMs = opts.commandTimeoutMs ?? target.commandTimeoutMs
  if (timeoutMs > 0) timeOutUnansweredCommands(redis, timeoutMs)
  // ioredis makes a new socket on every (re)connect.
  redis.on('connect', () => {
    const socket = socketOf(redis)
    // A speed-up only: an ioredis that keeps its socket elsewhere still works, one write per command.
    if (socket !== undefined) coalesceWrites(socket)
  })
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
