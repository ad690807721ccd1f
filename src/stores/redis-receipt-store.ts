import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import { RECENT_PUSHES, receiptStates, zeroCounts, type PushRecord, type PushStatus, type Receipt, type ReceiptStore } from './receipt-store.ts'

// {prefix}push:{pushId}      hash: record (JSON), processed, total, done, sweep (expiry cursor), and c:{state} counts
// {prefix}push:{pushId}:r    hash: deviceId -> receipt JSON {state, id?, reason?, at}
// {prefix}push:{pushId}:ids  sorted set (all scores 0) of device ids, paged with ZRANGEBYLEX
// All three expire together, a week after the push's ttl ends.
// {prefix}push-expiry         sorted set of device and list pushes by the end of their ttl, until swept
// Group and broadcast pushes, exact once-per-device counting (a HyperLogLog would take 12 KB instead of ~7 MB per
// set of 100,000 devices but miscounts by ~0.8 %, and cannot tell whether one device is in it):
// {prefix}push:{pushId}:sent    set of the devices written the push at QoS 1 that counted as sent
// {prefix}push:{pushId}:got     set of the devices that got it (PUBACK, or written at QoS 0)
// {prefix}push:{pushId}:ackers  set of the devices whose application ack counted
// The three expire an hour after the push's ttl: a broadcast reaches devices within its ttl only, so PUBACKs and
// acks come soon after.

export const RETAIN_AFTER_TTL_MS = 7 * 24 * 3600 * 1000

/** Lua: open_receipt(push key, receipts key, ids key, device id, state, receipt JSON): creates the receipt unless the device has one. */
const RECEIPT_OPEN_LUA = `
local function open_receipt (push, receipts, ids, deviceId, state, json)
  if redis.call('HSETNX', receipts, deviceId, json) == 1 then
    redis.call('HINCRBY', push, 'c:' .. state, 1)
    redis.call('ZADD', ids, 0, deviceId)
  end
end
`

// KEYS[1] push, KEYS[2] receipts, KEYS[3] ids; ARGV[1] retention ms, then (deviceId, state, receipt JSON) triples
const OPEN = RECEIPT_OPEN_LUA + `
for i = 2, #ARGV, 3 do open_receipt(KEYS[1], KEYS[2], KEYS[3], ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return 1`

// KEYS[1] push, KEYS[2] receipts, KEYS[3] ids, KEYS[4] expiry index; ARGV[1] push id, ARGV[2] page size, ARGV[3] at.
// One page of the expiry sweep, from the cursor kept in the push hash (field sweep), so any number of processes
// can sweep the same push: each call takes the next page. Returns {0: more to sweep | 1: fully swept (the push
// leaves the index) | 2: its job still runs, try later, then (device id, receipt JSON) of each receipt expired}.
const SWEEP = `
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[4], ARGV[1]); return {1} end
if redis.call('HGET', KEYS[1], 'done') ~= '1' then return {2} end
local cursor = redis.call('HGET', KEYS[1], 'sweep')
local from = '-'
if cursor then from = '(' .. cursor end
local ids = redis.call('ZRANGEBYLEX', KEYS[3], from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
local expired = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[2], id)
  if raw then
    local r = cjson.decode(raw)
    if r['state'] == 'queued' or r['state'] == 'sent' then
      local from_state = r['state']
      r['state'] = 'expired'
      r['at'] = tonumber(ARGV[3])
      local json = cjson.encode(r)
      redis.call('HSET', KEYS[2], id, json)
      redis.call('HINCRBY', KEYS[1], 'c:' .. from_state, -1)
      redis.call('HINCRBY', KEYS[1], 'c:expired', 1)
      expired[#expired + 1] = id
      expired[#expired + 1] = json
    end
  end
end
local status = 0
if #ids < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[4], ARGV[1])
  status = 1
else
  redis.call('HSET', KEYS[1], 'sweep', ids[#ids])
end
return {status, unpack(expired)}`

// KEYS[1] push, KEYS[2] receipts; ARGV[1] deviceId, ARGV[2] target state, ARGV[3] at, ARGV[4] reason ('' for none)
// The rule is mayMove() in receipt-store.ts. Returns the receipt JSON after the move, or nil when it did not move.
const TRANSITION = `
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return false end
local r = cjson.decode(raw)
local from, to = r['state'], ARGV[2]
if from == 'acked' or from == 'expired' or from == 'failed' then return false end
local rank = { queued = 0, sent = 1, delivered = 2, acked = 3 }
local ok
if to == 'failed' then ok = true
elseif to == 'expired' then ok = (from == 'queued' or from == 'sent')
else ok = rank[to] ~= nil and rank[to] > rank[from] end
if not ok then return false end
r['state'] = to
r['at'] = tonumber(ARGV[3])
if ARGV[4] ~= '' then r['reason'] = ARGV[4] end
local json = cjson.encode(r)
redis.call('HSET', KEYS[2], ARGV[1], json)
redis.call('HINCRBY', KEYS[1], 'c:' .. from, -1)
redis.call('HINCRBY', KEYS[1], 'c:' .. to, 1)
return json`

const SETS_AFTER_TTL_MS = 3600 * 1000

/** Lua: count_only(push key): whether the push exists and is a group or broadcast push. */
const COUNT_ONLY_LUA = `
local function count_only (push)
  local raw = redis.call('HGET', push, 'record')
  if not raw then return false end
  local kind = cjson.decode(raw)['target']['kind']
  return kind == 'group' or kind == 'all'
end
`

// KEYS[1] push, KEYS[2] sent, KEYS[3] got, KEYS[4] ackers; ARGV[1] sets' ttl ms, ARGV[2] number of sent ids, then
// the sent ids, then the got ids. Returns {added to sent, added to delivered, {devices counted as sent},
// {devices counted as delivered}}; the rule is countDeliveries() in receipt-store.ts.
const COUNT_DELIVERIES = COUNT_ONLY_LUA + `
if not count_only(KEYS[1]) then return {0, 0, {}, {}} end
local n = tonumber(ARGV[2])
local sent, delivered, sentIds, deliveredIds = 0, 0, {}, {}
for i = 3, 2 + n do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[3], id) == 0 and redis.call('SISMEMBER', KEYS[4], id) == 0 and redis.call('SADD', KEYS[2], id) == 1 then
    sent = sent + 1
    sentIds[#sentIds + 1] = id
  end
end
for i = 3 + n, #ARGV do
  local id = ARGV[i]
  if redis.call('SADD', KEYS[3], id) == 1 and redis.call('SISMEMBER', KEYS[4], id) == 0 then
    delivered = delivered + 1
    deliveredIds[#deliveredIds + 1] = id
    sent = sent - redis.call('SISMEMBER', KEYS[2], id)
  end
end
if sent ~= 0 then redis.call('HINCRBY', KEYS[1], 'c:sent', sent) end
if delivered ~= 0 then redis.call('HINCRBY', KEYS[1], 'c:delivered', delivered) end
for k = 2, 3 do if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('PEXPIRE', KEYS[k], ARGV[1]) end end
return {sent, delivered, sentIds, deliveredIds}`

// KEYS: (got, ackers) per candidate push; ARGV[1] device id. Returns the 1-based positions of the pushes the
// device has neither got nor acked.
const NOT_RECEIVED = `
local out = {}
for i = 1, #KEYS, 2 do
  if redis.call('SISMEMBER', KEYS[i], ARGV[1]) == 0 and redis.call('SISMEMBER', KEYS[i + 1], ARGV[1]) == 0 then
    out[#out + 1] = (i + 1) / 2
  end
end
return out`

// KEYS[1] push, KEYS[2] ackers, KEYS[3] got, KEYS[4] sent; ARGV[1] ackers ttl ms, then device ids. Returns the
// devices whose ack counted: each moves its device from delivered (or sent) to acked; a device counted in neither never
// received the push, and its ack counts nothing.
const COUNT_ACKS = COUNT_ONLY_LUA + `
if not count_only(KEYS[1]) then return {} end
local added, fromDelivered, fromSent = {}, 0, 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[2], id) == 0 then
    local from = nil
    if redis.call('SISMEMBER', KEYS[3], id) == 1 then fromDelivered = fromDelivered + 1; from = 1
    elseif redis.call('SISMEMBER', KEYS[4], id) == 1 then fromSent = fromSent + 1; from = 1 end
    if from then
      redis.call('SADD', KEYS[2], id)
      added[#added + 1] = id
    end
  end
end
if #added > 0 then redis.call('HINCRBY', KEYS[1], 'c:acked', #added) end
if fromDelivered > 0 then redis.call('HINCRBY', KEYS[1], 'c:delivered', -fromDelivered) end
if fromSent > 0 then redis.call('HINCRBY', KEYS[1], 'c:sent', -fromSent) end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return added`

/** The key names above, for scripts that open receipts together with other writes (redis-push-job-store.ts). */
export function receiptKeys (prefix: string): { push: (pushId: string) => string, receipts: (pushId: string) => string, ids: (pushId: string) => string } {
  return { push: (id) => `${prefix}push:${id}`, receipts: (id) => `${prefix}push:${id}:r`, ids: (id) => `${prefix}push:${id}:ids` }
}

export function createRedisReceiptStore ({ redis, prefix }: { redis: Redis, prefix: string }): ReceiptStore {
  const { push: pushKey, receipts: receiptsKey, ids: idsKey } = receiptKeys(prefix)
  const ackersKey = (id: string): string => `${prefix}push:${id}:ackers`
  const gotKey = (id: string): string => `${prefix}push:${id}:got`
  const sentKey = (id: string): string => `${prefix}push:${id}:sent`
  const countDeliveries = redisScript(redis, COUNT_DELIVERIES)
  const notReceived = redisScript(redis, NOT_RECEIVED)
  const countAcks = redisScript(redis, COUNT_ACKS)
  /** The count-only sets' lifetime: the push's ttl and an hour. */
  const setsTtlOf = async (pushId: string): Promise<number> => await retentionOf(pushId) - RETAIN_AFTER_TTL_MS + SETS_AFTER_TTL_MS
  const expiryKey = `${prefix}push-expiry`
  const retention = new Map<string, number>()
  const retentionOf = async (pushId: string): Promise<number> => {
    let ms = retention.get(pushId)
    if (ms === undefined) {
      const raw = await redis.hget(pushKey(pushId), 'record')
      ms = raw === null ? RETAIN_AFTER_TTL_MS : (JSON.parse(raw) as PushRecord).ttlSeconds * 1000 + RETAIN_AFTER_TTL_MS
      if (retention.size > 1000) retention.clear()
      retention.set(pushId, ms)
    }
    return ms
  }
  // Sorted set pushId -> createdAt: the latest RECENT_PUSHES pushes (the dashboard's list), trimmed at each push.
  const recentKey = `${prefix}pushes`
  const statusOf = (h: Record<string, string>): PushStatus | undefined => {
    if (h.record === undefined) return undefined
    const counts = zeroCounts()
    for (const s of receiptStates) counts[s] = Number(h[`c:${s}`] ?? 0)
    return {
      ...(JSON.parse(h.record) as PushRecord),
      processed: Number(h.processed ?? 0),
      total: h.total === undefined ? undefined : Number(h.total),
      done: h.done === '1',
      counts
    }
  }
  const decode = (deviceId: string, raw: string): Receipt => ({ deviceId, ...(JSON.parse(raw) as Omit<Receipt, 'deviceId'>) })

  return {
    async createPush (record, total) {
      const ms = record.ttlSeconds * 1000 + RETAIN_AFTER_TTL_MS
      retention.set(record.pushId, ms)
      const fields: Record<string, string | number> = { record: JSON.stringify(record), processed: 0, done: 0 }
      for (const s of receiptStates) fields[`c:${s}`] = 0
      if (total !== undefined) fields.total = total
      const m = redis.multi().hset(pushKey(record.pushId), fields).pexpire(pushKey(record.pushId), ms)
        .zadd(recentKey, record.createdAt, record.pushId).zremrangebyrank(recentKey, 0, -RECENT_PUSHES - 1)
      if (record.target.kind === 'device' || record.target.kind === 'devices') m.zadd(expiryKey, record.createdAt + record.ttlSeconds * 1000, record.pushId)
      await m.exec()
    },
    async getPush (pushId): Promise<PushStatus | undefined> {
      return statusOf(await redis.hgetall(pushKey(pushId)))
    },
    async recent (limit) {
      const ids = await redis.zrevrange(recentKey, 0, limit - 1)
      if (ids.length === 0) return []
      const m = redis.multi()
      for (const id of ids) m.hgetall(pushKey(id))
      const replies = await m.exec() ?? []
      // A push whose record expired is skipped (its id leaves the list as newer pushes arrive).
      return replies.flatMap(([err, h]) => { const s = err === null ? statusOf(h as Record<string, string>) : undefined; return s === undefined ? [] : [s] })
    },
    async progress (pushId, processed, end) {
      const m = redis.multi().hincrby(pushKey(pushId), 'processed', processed)
      if (end !== undefined) m.hset(pushKey(pushId), { total: end.total, done: 1 })
      await m.exec()
    },
    async open (pushId, receipts, at) {
      if (receipts.length === 0) return
      const args: Array<string | number> = [await retentionOf(pushId)]
      for (const { deviceId, ...rest } of receipts) args.push(deviceId, rest.state, JSON.stringify({ ...rest, at }))
      await redis.eval(OPEN, 3, pushKey(pushId), receiptsKey(pushId), idsKey(pushId), ...args)
    },
    async transition (pushId, deviceId, to, at, reason) {
      const raw = await redis.eval(TRANSITION, 2, pushKey(pushId), receiptsKey(pushId), deviceId, to, at, reason ?? '') as string | null
      return raw === null ? undefined : decode(deviceId, raw)
    },
    async getReceipt (pushId, deviceId) {
      const raw = await redis.hget(receiptsKey(pushId), deviceId)
      return raw === null ? undefined : decode(deviceId, raw)
    },
    async list (pushId, after, limit) {
      const ids = await redis.zrangebylex(idsKey(pushId), after === undefined ? '-' : `(${after}`, '+', 'LIMIT', 0, limit + 1)
      const page = ids.slice(0, limit)
      if (page.length === 0) return { receipts: [], next: undefined }
      const raws = await redis.hmget(receiptsKey(pushId), ...page)
      const receipts = page.flatMap((id, i) => { const raw = raws[i]; return raw == null ? [] : [decode(id, raw)] })
      return { receipts, next: ids.length > limit ? page[page.length - 1] : undefined }
    },
    async countDeliveries (pushId, sent, got) {
      if (sent.length === 0 && got.length === 0) return { sent: 0, delivered: 0, sentIds: [], deliveredIds: [] }
      const keys = [pushKey(pushId), sentKey(pushId), gotKey(pushId), ackersKey(pushId)]
      const [s, d, sentIds, deliveredIds] = await countDeliveries(keys, [await setsTtlOf(pushId), sent.length, ...sent, ...got]) as [number, number, string[], string[]]
      return { sent: s, delivered: d, sentIds, deliveredIds }
    },
    async countedStates (pushId, deviceIds) {
      if (deviceIds.length === 0) return []
      const replies = await redis.multi()
        .call('SMISMEMBER', ackersKey(pushId), ...deviceIds)
        .call('SMISMEMBER', gotKey(pushId), ...deviceIds)
        .call('SMISMEMBER', sentKey(pushId), ...deviceIds)
        .exec()
      if (replies === null) throw new Error('countedStates: transaction discarded')
      for (const [err] of replies) if (err !== null) throw err
      const [acked, got, sent] = replies.map(([, v]) => v as number[]) as [number[], number[], number[]]
      return deviceIds.map((_, i) => acked[i] === 1 ? 'acked' : got[i] === 1 ? 'delivered' : sent[i] === 1 ? 'sent' : undefined)
    },
    async notReceived (deviceId, pushIds) {
      if (pushIds.length === 0) return []
      const positions = await notReceived(pushIds.flatMap((id) => [gotKey(id), ackersKey(id)]), [deviceId]) as number[]
      return positions.flatMap((i) => { const id = pushIds[i - 1]; return id === undefined ? [] : [id] })
    },
    async dueForExpiry (at, limit) {
      return await redis.zrangebyscore(expiryKey, '-inf', at, 'LIMIT', 0, limit)
    },
    async sweepExpired (pushId, limit, at) {
      const [status, ...pairs] = await redis.eval(SWEEP, 4, pushKey(pushId), receiptsKey(pushId), idsKey(pushId), expiryKey, pushId, limit, at) as [number, ...string[]]
      const expired: Receipt[] = []
      for (let i = 0; i + 1 < pairs.length; i += 2) expired.push(decode(pairs[i] as string, pairs[i + 1] as string))
      return { expired, finished: status === 1 }
    },
    async countAcks (pushId, deviceIds) {
      if (deviceIds.length === 0) return []
      return await countAcks([pushKey(pushId), ackersKey(pushId), gotKey(pushId), sentKey(pushId)], [await setsTtlOf(pushId), ...deviceIds]) as string[]
    }
  }
}
