import type { Redis } from 'ioredis'
import type { CounterStore } from './counter-store.ts'

// {prefix}count:{key} is an integer that expires with its window; one round trip per hit.

// KEYS[1] counter; ARGV[1] window ms
const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { n, redis.call('PTTL', KEYS[1]) }`

export function createRedisCounterStore ({ redis, prefix }: { redis: Redis, prefix: string }): CounterStore {
  const key = (k: string): string => `${prefix}count:${k}`
  return {
    async hit (k, windowMs) {
      const [count, ttl] = await redis.eval(HIT, 1, key(k), windowMs) as [number, number]
      return { count, resetAt: Date.now() + Math.max(ttl, 0) }
    },
    async peek (k) {
      const [raw, ttl] = await redis.multi().get(key(k)).pttl(key(k)).exec() as Array<[Error | null, unknown]>
      const count = raw?.[1] === null || raw?.[1] === undefined ? 0 : Number(raw[1])
      return { count, resetAt: Date.now() + Math.max(Number(ttl?.[1] ?? 0), 0) }
    },
    async reset (k) {
      await redis.del(key(k))
    }
  }
}
