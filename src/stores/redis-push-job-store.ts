import type { Redis } from 'ioredis'
import type { HistoryLimits } from './history-store.ts'
import type { PushJobBody, PushJobStore } from './push-job-store.ts'
import { HISTORY_APPEND_LUA, historyEntryJson, historyKeys } from './redis-history-store.ts'
import { RECEIPT_OPEN_LUA, RETAIN_AFTER_TTL_MS, receiptKeys } from './redis-receipt-store.ts'

// {prefix}push-jobs            sorted set: push id -> lease end (epoch ms; 0 for a job nobody has held yet)
// {prefix}push-job-owners      hash: push id -> owner holding the lease
// {prefix}push-job:{pushId}    hash: cursor, total, body (JSON)
// {prefix}push-job:{pushId}:ids  list of the job's device ids, in request order
// A chunk commit is one script over the chunk's history keys and the push's receipt keys (single Redis, not
// Redis Cluster: the keys of one chunk live in different slots).

const JOB_KEY_TTL_MS = 7 * 24 * 3600 * 1000
const IDS_PER_RPUSH = 10_000

// KEYS[1] jobs, KEYS[2] owners; ARGV[1] at, ARGV[2] lease ms, ARGV[3] owner
const CLAIM = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), due[1])
redis.call('HSET', KEYS[2], due[1], ARGV[3])
return due[1]`

// KEYS[1] jobs, KEYS[2] owners; ARGV[1] push id, ARGV[2] owner, ARGV[3] lease end
const RENEW = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1`

// KEYS[1] job, KEYS[2] push, KEYS[3] receipts, KEYS[4] receipt ids, then (history entries, history meta) per
// known device. ARGV[1] cursor, ARGV[2] number of known devices, ARGV[3] entry JSON, ARGV[4] max messages,
// ARGV[5] age cutoff, ARGV[6] history key ttl, ARGV[7] receipt retention ms, ARGV[8] at, then the known device
// ids, then the unknown ones. Returns the new message ids, or nil when the cursor moved.
const COMMIT = HISTORY_APPEND_LUA + RECEIPT_OPEN_LUA + `
if tonumber(redis.call('HGET', KEYS[1], 'cursor') or '-1') ~= tonumber(ARGV[1]) then return false end
local n = tonumber(ARGV[2])
local maxMessages, cutoff, at = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[8])
local out = {}
for i = 1, n do
  local id = append(KEYS[3 + 2 * i], KEYS[4 + 2 * i], ARGV[3], maxMessages, cutoff, ARGV[6])
  open_receipt(KEYS[2], KEYS[3], KEYS[4], ARGV[8 + i], 'queued', cjson.encode({ state = 'queued', id = id, at = at }))
  out[i] = id
end
local failed = cjson.encode({ state = 'failed', reason = 'unknown device', at = at })
for i = 9 + n, #ARGV do open_receipt(KEYS[2], KEYS[3], KEYS[4], ARGV[i], 'failed', failed) end
local count = #ARGV - 8
redis.call('HINCRBY', KEYS[1], 'cursor', count)
redis.call('HINCRBY', KEYS[2], 'processed', count)
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
return out`

export function createRedisPushJobStore ({ redis, prefix, limits, now = Date.now }: { redis: Redis, prefix: string, limits: HistoryLimits, now?: () => number }): PushJobStore {
  const jobsKey = `${prefix}push-jobs`
  const ownersKey = `${prefix}push-job-owners`
  const jobKey = (id: string): string => `${prefix}push-job:${id}`
  const idsKey = (id: string): string => `${prefix}push-job:${id}:ids`
  const history = historyKeys(prefix)
  const receipts = receiptKeys(prefix)

  return {
    async create (pushId, ids, body) {
      const m = redis.multi()
      for (let i = 0; i < ids.length; i += IDS_PER_RPUSH) m.rpush(idsKey(pushId), ...ids.slice(i, i + IDS_PER_RPUSH))
      m.hset(jobKey(pushId), { cursor: 0, total: ids.length, body: JSON.stringify(body) })
      m.pexpire(idsKey(pushId), JOB_KEY_TTL_MS).pexpire(jobKey(pushId), JOB_KEY_TTL_MS)
      // Claimable last, once everything it needs is written.
      m.zadd(jobsKey, 0, pushId)
      await m.exec()
    },
    async claim (owner, leaseMs, at) {
      return await redis.eval(CLAIM, 2, jobsKey, ownersKey, at, leaseMs, owner) as string | null ?? undefined
    },
    async renew (pushId, owner, leaseMs, at) {
      return await redis.eval(RENEW, 2, jobsKey, ownersKey, pushId, owner, at + leaseMs) === 1
    },
    async next (pushId, limit) {
      const h = await redis.hgetall(jobKey(pushId))
      if (h.cursor === undefined || h.body === undefined) return undefined
      const cursor = Number(h.cursor)
      const ids = await redis.lrange(idsKey(pushId), cursor, cursor + limit - 1)
      return { cursor, ids, total: Number(h.total), body: JSON.parse(h.body) as PushJobBody }
    },
    async commit (pushId, cursor, known, unknown, entry) {
      const at = now()
      const keys = [jobKey(pushId), receipts.push(pushId), receipts.receipts(pushId), receipts.ids(pushId)]
      for (const id of known) keys.push(history.entries(id), history.meta(id))
      const retentionMs = Math.max(0, entry.expiresAt - at) + RETAIN_AFTER_TTL_MS
      const out = await redis.eval(COMMIT, keys.length, ...keys, cursor, known.length, historyEntryJson(entry),
        limits.maxMessages, at - limits.maxAgeMs, limits.maxAgeMs, retentionMs, entry.sentAt, ...known, ...unknown) as number[] | null
      return out ?? undefined
    },
    async finish (pushId) {
      await redis.multi().zrem(jobsKey, pushId).hdel(ownersKey, pushId).del(jobKey(pushId), idsKey(pushId)).exec()
    }
  }
}
