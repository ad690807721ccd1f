import type { Redis } from 'ioredis'
import type { RedisMetrics } from './redis-metrics.ts'

// Redis round-trip time, measured by a PING every `everyMs` on the connection the stores use, so it includes
// the queueing those commands see. One PING at a time: a Redis that does not answer is counted, not piled up.

export interface RedisLatencyProbe {
  close (): Promise<void>
}

export function startRedisLatencyProbe (opts: {
  readonly redis: Redis
  readonly metrics: Pick<RedisMetrics, 'redisRoundTrip' | 'redisPingFailures'>
  readonly everyMs: number
  /** A PING unanswered this long counts as failed (it is still awaited before the next one). */
  readonly timeoutMs?: number
}): RedisLatencyProbe {
  const { redis, metrics } = opts
  const timeoutMs = opts.timeoutMs ?? Math.max(opts.everyMs, 1000)
  let inFlight: Promise<void> | undefined
  const probe = async (): Promise<void> => {
    const started = process.hrtime.bigint()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), timeoutMs) })
    try {
      const answer = await Promise.race([redis.ping(), late])
      if (answer === 'late') metrics.redisPingFailures.inc()
      else metrics.redisRoundTrip.observe(Number(process.hrtime.bigint() - started) / 1e9)
    } catch {
      metrics.redisPingFailures.inc()
    } finally {
      clearTimeout(timer)
    }
  }
  const timer = setInterval(() => {
    if (inFlight !== undefined || redis.status !== 'ready') {
      if (redis.status !== 'ready') metrics.redisPingFailures.inc()
      return
    }
    inFlight = probe().finally(() => { inFlight = undefined })
  }, opts.everyMs)
  timer.unref()
  return {
    async close () {
      clearInterval(timer)
      await inFlight
    }
  }
}
