import type { Redis } from 'ioredis'
import type { HistoryLimits } from './history-store.ts'
import type { PushJobBody, PushJobStore } from './push-job-store.ts'
import { redisDeviceKey } from './redis-device-store.ts'
import { HISTORY_APPEND_LUA, historyEntryTail, historyKeys } from './redis-history-store.ts'
import { RETAIN_AFTER_TTL_MS, receiptKeys } from './redis-receipt-store.ts'

// {prefix}push-jobs            sorted set: push id -> lease end (epoch ms; 0 for a job nobody has held yet)
// {prefix}push-job-owners      hash: push id -> owner holding the lease
// {prefix}push-job:{pushId}    hash: cursor, ordered (how far delivery orders went out), total, body (JSON)
// {prefix}push-job:{pushId}:ids  list of the job's device ids, in request order
// A chunk checks each device's existence ({prefix}device:{id}, redis-device-store.ts) inside the commit.
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

// KEYS[1] job, KEYS[2] push, KEYS[3] receipts, KEYS[4] receipt ids, then (device, history entries, history
// meta) per candidate. ARGV[1] cursor, ARGV[2] number of candidates, ARGV[3] entry JSON tail, ARGV[4] max
// messages, ARGV[5] age cutoff, ARGV[6] history key ttl, ARGV[7] receipt retention ms, ARGV[8] at, then the
// candidate ids, then the invalid ones. Returns each candidate's new message id (0: unknown device), or nil when
// the cursor moved. Receipts are written as open_receipt() in redis-receipt-store.ts writes them, with the counts
// added once per chunk.
const COMMIT = HISTORY_APPEND_LUA + `
if tonumber(redis.call('HGET', KEYS[1], 'cursor') or '-1') ~= tonumber(ARGV[1]) then return false end
local n = tonumber(ARGV[2])
local maxMessages, cutoff, at = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[8]
local out, added, queued, failed = {}, {}, 0, 0
local failedJson = '{"state":"failed","reason":"unknown device","at":' .. at .. '}'
local function open (deviceId, json)
  if redis.call('HSETNX', KEYS[3], deviceId, json) == 0 then return false end
  added[#added + 1] = 0
  added[#added + 1] = deviceId
  return true
end
for i = 1, n do
  local deviceId = ARGV[8 + i]
  if redis.call('EXISTS', KEYS[2 + 3 * i]) == 1 then
    local id = append(KEYS[3 + 3 * i], KEYS[4 + 3 * i], ARGV[3], maxMessages, cutoff, ARGV[6])
    if open(deviceId, '{"state":"queued","id":' .. id .. ',"at":' .. at .. '}') then queued = queued + 1 end
    out[i] = id
  else
    if open(deviceId, failedJson) then failed = failed + 1 end
    out[i] = 0
  end
end
for i = 9 + n, #ARGV do if open(ARGV[i], failedJson) then failed = failed + 1 end end
if #added > 0 then redis.call('ZADD', KEYS[4], unpack(added)) end
if queued > 0 then redis.call('HINCRBY', KEYS[2], 'c:queued', queued) end
if failed > 0 then redis.call('HINCRBY', KEYS[2], 'c:failed', failed) end
local count = #ARGV - 8
redis.call('HINCRBY', KEYS[1], 'cursor', count)
redis.call('HINCRBY', KEYS[2], 'processed', count)
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
return out`

// KEYS[1] job; ARGV[1] position. Moves `ordered` forward, never past the cursor, and never recreates a finished job.
const MARK_ORDERED = `
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if not cursor then return 0 end
local to = math.min(tonumber(ARGV[1]), tonumber(cursor))
if to > tonumber(redis.call('HGET', KEYS[1], 'ordered') or '0') then redis.call('HSET', KEYS[1], 'ordered', to) end
return 1`

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
      return { cursor, ids, total: Number(h.total), body: JSON.parse(h.body) as PushJobBody, ordered: Number(h.ordered ?? 0) }
    },
    async commit (pushId, cursor, candidates, invalid, entry) {
      const at = now()
      const keys = [jobKey(pushId), receipts.push(pushId), receipts.receipts(pushId), receipts.ids(pushId)]
      for (const id of candidates) keys.push(redisDeviceKey(prefix, id), history.entries(id), history.meta(id))
      const retentionMs = Math.max(0, entry.expiresAt - at) + RETAIN_AFTER_TTL_MS
      const out = await redis.eval(COMMIT, keys.length, ...keys, cursor, candidates.length, historyEntryTail(entry),
        limits.maxMessages, at - limits.maxAgeMs, limits.maxAgeMs, retentionMs, Math.round(entry.sentAt), ...candidates, ...invalid) as number[] | null
      return out === null ? undefined : out.map((id) => id === 0 ? null : id)
    },
    async markOrdered (pushId, position) {
      await redis.eval(MARK_ORDERED, 1, jobKey(pushId), position)
    },
    async range (pushId, from, to) {
      return to <= from ? [] : await redis.lrange(idsKey(pushId), from, to - 1)
    },
    async finish (pushId) {
      await redis.multi().zrem(jobsKey, pushId).hdel(ownersKey, pushId).del(jobKey(pushId), idsKey(pushId)).exec()
    }
  }
}
