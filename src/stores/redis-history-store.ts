import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import type { HistoryEntry, HistoryLimits, HistoryStore, NewHistoryEntry } from './history-store.ts'

// {prefix}hist:{deviceId}       sorted set scored by id, members are the entries as JSON
// {prefix}hist-meta:{deviceId}  hash: seq (last id given), delivered (high-water mark); never expires, so ids
//                               keep increasing even after the entries have aged out

/**
 * Lua: append(entries key, meta key, entry JSON without id and without its opening brace, max messages, age
 * cutoff ms, key ttl ms) -> new id. The id is put in front by concatenation (no JSON work per device but the age
 * check of the oldest entry). Shared with redis-push-job-store.ts, which appends a whole chunk in one script.
 */
export const HISTORY_APPEND_LUA = `
local function append (entries, meta, tail, maxMessages, cutoff, ttl)
  local id = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('ZADD', entries, id, '{"id":' .. id .. ',' .. tail)
  local over = redis.call('ZCARD', entries) - maxMessages
  if over > 0 then redis.call('ZREMRANGEBYRANK', entries, 0, over - 1) end
  while true do
    local first = redis.call('ZRANGE', entries, 0, 0)
    if #first == 0 then break end
    if cjson.decode(first[1])['sentAt'] >= cutoff then break end
    redis.call('ZREMRANGEBYRANK', entries, 0, 0)
  end
  redis.call('PEXPIRE', entries, ttl)
  return id
end
`

// KEYS[1] entries, KEYS[2] meta; ARGV[1] entry JSON without id and opening brace, ARGV[2] max messages, ARGV[3] age cutoff (ms),
// ARGV[4] key ttl (ms). Returns the new id.
const APPEND = HISTORY_APPEND_LUA + 'return append(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])'

// KEYS[1] meta; ARGV[1] id
const MARK = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'delivered', ARGV[1]) end
return 1`

/**
 * An entry as stored, without its id and without its opening brace (append() puts `{"id":n,` in front). cjson
 * turns an empty JSON object and an empty array into the same thing: data stays text inside scripts.
 */
export function historyEntryTail (entry: NewHistoryEntry): string {
  return JSON.stringify({ pushId: entry.pushId, sentAt: entry.sentAt, expiresAt: entry.expiresAt, qos: entry.qos, d: JSON.stringify(entry.data), ...(entry.traceId !== undefined && { t: entry.traceId }) }).slice(1)
}

/** The key names above, for scripts that write history together with other things. */
export function historyKeys (prefix: string): { entries: (deviceId: string) => string, meta: (deviceId: string) => string } {
  return { entries: (d) => `${prefix}hist:${d}`, meta: (d) => `${prefix}hist-meta:${d}` }
}

// KEYS[1] entries, KEYS[2] meta; ARGV[1] how far below the delivered mark, ARGV[2] limit. A device without
// history (the common connect) costs one HGET.
const UNDELIVERED = `
local mark = tonumber(redis.call('HGET', KEYS[2], 'delivered') or '0')
local after = mark - tonumber(ARGV[1])
if after < 0 then after = 0 end
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. after, '+inf', 'LIMIT', 0, ARGV[2])`

export function createRedisHistoryStore ({ redis, prefix, limits, now = Date.now }: { redis: Redis, prefix: string, limits: HistoryLimits, now?: () => number }): HistoryStore {
  const { entries: entriesKey, meta: metaKey } = historyKeys(prefix)
  const parse = (raw: string): HistoryEntry => JSON.parse(raw) as HistoryEntry
  const undelivered = redisScript(redis, UNDELIVERED)
  const recent = (raws: string[], limit: number, at: number): HistoryEntry[] => {
    const cutoff = at - limits.maxAgeMs
    // Aged entries are dropped on the next append; skip them here.
    return raws.map(decode).filter((e) => e.sentAt >= cutoff).slice(0, limit)
  }
  return {
    async append (deviceId, entry) {
      const t = now()
      const json = historyEntryTail(entry)
      const id = await redis.eval(APPEND, 2, entriesKey(deviceId), metaKey(deviceId), json, limits.maxMessages, t - limits.maxAgeMs, limits.maxAgeMs) as number
      return { ...entry, id }
    },
    async range (deviceId, range, at = now()) {
      const min = `(${range.after ?? 0}`
      const max = range.before === undefined ? '+inf' : `(${range.before}`
      const raws = await redis.zrangebyscore(entriesKey(deviceId), min, max, 'LIMIT', 0, range.limit + 64)
      return recent(raws, range.limit, at)
    },
    async get (deviceId, id) {
      const raws = await redis.zrangebyscore(entriesKey(deviceId), id, id)
      return raws.length === 0 ? undefined : decode(raws[0] as string)
    },
    async markDelivered (deviceId, id) {
      await redis.eval(MARK, 1, metaKey(deviceId), id)
    },
    async delivered (deviceId) {
      return Number(await redis.hget(metaKey(deviceId), 'delivered') ?? 0)
    },
    async undelivered (deviceId, belowMark, limit) {
      const raws = await undelivered([entriesKey(deviceId), metaKey(deviceId)], [belowMark, limit + 64]) as string[]
      return recent(raws, limit, now())
    },
    async clear (deviceId) {
      await redis.del(entriesKey(deviceId), metaKey(deviceId))
    }
  }
  function decode (raw: string): HistoryEntry {
    const e = parse(raw) as HistoryEntry & { d: string, t?: string }
    return { id: e.id, pushId: e.pushId, sentAt: e.sentAt, expiresAt: e.expiresAt, qos: e.qos, data: JSON.parse(e.d) as unknown, ...(e.t !== undefined && { traceId: e.t }) }
  }
}
