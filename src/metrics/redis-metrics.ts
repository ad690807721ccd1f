import { Counter, Histogram, type Registry } from 'prom-client'

// Instruments of the process's Redis connections: the latency probe and the replica wait.

export interface RedisMetrics {
  /** Round trips to Redis (a periodic PING on the main connection). */
  readonly redisRoundTrip: Histogram
  readonly redisPingFailures: Counter
  /** Waits for the Redis replicas before a 201 or 202 (src/shared/replica-wait.ts): their duration, and those that timed out. */
  readonly redisWaitSeconds: Histogram
  readonly redisWaitTimeouts: Counter
}

export function registerRedisMetrics (registry: Registry): RedisMetrics {
  const registers = [registry]
  return {
    redisRoundTrip: new Histogram({
      name: 'pushline_redis_roundtrip_seconds',
      help: 'Redis round-trip time of a periodic PING',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers
    }),
    redisPingFailures: new Counter({ name: 'pushline_redis_ping_failures_total', help: 'periodic Redis PINGs that failed or timed out', registers }),
    redisWaitSeconds: new Histogram({
      name: 'pushline_redis_wait_seconds',
      help: 'duration of one replica-wait round (a marker write, then WAIT): one round serves every device creation and push that arrived while the previous round ran, so a single request can wait up to two rounds; not observed when the primary has no replica connected',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers
    }),
    redisWaitTimeouts: new Counter({ name: 'pushline_redis_wait_timeouts_total', help: 'waits for the Redis replicas that timed out (the answer went out unconfirmed)', registers })
  }
}
