import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import type { CounterHit, CounterStore, LimitedHit } from './counter-store.ts'

// {prefix}count:{key} is an integer that expires with its window; one round trip per call.

// KEYS[1] counter; ARGV[1] window ms
const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { n, redis.call('PTTL', KEYS[1]) }`

/**
 * Lua: hits KEYS[1..n], n = tonumber(ARGV[1]); ARGV[3i - 1], ARGV[3i], ARGV[3i + 1]: window ms, limit and amount (at
 * least 1) of hit i, from 1; stops after the first hit over its limit. Leaves locals `n`, `hits` (how many were
 * counted), `over` (whether the last went over its limit) and `out` = { count, ttl, ... } per hit counted, for the
 * rest of the script. A window the hit opens lasts its full length: no TTL asked of Redis for it.
 */
export const LIMITED_HITS_LUA = `
local n = tonumber(ARGV[1])
local out = {}
local hits = 0
local over = false
for i = 1, n do
  local c = redis.call('INCRBY', KEYS[i], ARGV[3 * i + 1])
  local ttl
  if c == tonumber(ARGV[3 * i + 1]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[3 * i - 1])
    ttl = tonumber(ARGV[3 * i - 1])
  else
    ttl = redis.call('PTTL', KEYS[i])
  end
  out[#out + 1] = c
  out[#out + 1] = ttl
  hits = hits + 1
  if c > tonumber(ARGV[3 * i]) then
    over = true
    break
  end
end`

/** The ARGV head LIMITED_HITS_LUA reads. */
export function limitedHitsArgs (limited: readonly LimitedHit[]): Array<string | number> {
  const args: Array<string | number> = [limited.length]
  for (const h of limited) args.push(h.windowMs, h.limit, h.by ?? 1)
  return args
}

// KEYS: the counters to hit (see LIMITED_HITS_LUA), then the counters to peek. Returns { hit count, hit ttl, ...,
// peek count, peek ttl, ... }; fewer hits when one went over its limit. An absent peeked key has no window.
const HIT_AND_PEEK = LIMITED_HITS_LUA + `
for i = n + 1, #KEYS do
  local c = redis.call('GET', KEYS[i])
  if c then
    out[#out + 1] = tonumber(c)
    out[#out + 1] = redis.call('PTTL', KEYS[i])
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return { hits, out }`

/** A counter's key in Redis, for scripts of other stores that count on it. */
export function redisCounterKey (prefix: string, k: string): string {
  return `${prefix}count:${k}`
}

export function createRedisCounterStore ({ redis, prefix }: { redis: Redis, prefix: string }): CounterStore {
  const key = (k: string): string => redisCounterKey(prefix, k)
  const hit = redisScript(redis, HIT)
  const hitAndPeek = redisScript(redis, HIT_AND_PEEK)
  // A key without a window (no TTL: -1, absent: -2) ends now.
  const counterHit = (count: number, ttl: number, t: number): CounterHit => ({ count, resetAt: t + Math.max(ttl, 0) })
  return {
    async hit (k, windowMs) {
      const [count, ttl] = await hit([key(k)], [windowMs]) as [number, number]
      return counterHit(count, ttl, Date.now())
    },
    async peek (k) {
      const [raw, ttl] = await redis.multi().get(key(k)).pttl(key(k)).exec() as Array<[Error | null, unknown]>
      const count = raw?.[1] === null || raw?.[1] === undefined ? 0 : Number(raw[1])
      return { count, resetAt: Date.now() + Math.max(Number(ttl?.[1] ?? 0), 0) }
    },
    async reset (k) {
      await redis.del(key(k))
    },
    async hitAndPeek (limited, peeks) {
      const keys = [...limited.map((h) => key(h.key)), ...peeks.map(key)]
      const [hitCount, flat] = await hitAndPeek(keys, limitedHitsArgs(limited)) as [number, number[]]
      const t = Date.now()
      const pairs = (from: number, n: number): CounterHit[] =>
        Array.from({ length: n }, (_, i) => counterHit(flat[2 * (from + i)] as number, flat[2 * (from + i) + 1] as number, t))
      return { hits: pairs(0, hitCount), peeks: pairs(hitCount, peeks.length) }
    }
  }
}
