import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import { TRANSPORTS, type ConnectionOrigin, type PresenceEntry, type PresenceStore, type Transport } from './presence-store.ts'

// {prefix}presence         hash deviceId -> "nodeId epoch connectedAt[ transport address]"
// {prefix}online           sorted set of the online device ids, all scores 0 so it sorts by id (ZCARD = devices
//                          online; the operators' listing pages through it)
// {prefix}online:{n}       the same for the devices node n holds
// {prefix}last-seen        sorted set of offline devices, scored by the epoch ms of their last disconnect
// {prefix}epoch            counter that gives every connection its epoch
// Every write is one Lua script, so the hash and the indexes never disagree.
// Nodes before the sorted indexes kept a plain set at {prefix}presence:{n}; a dead-node cleanup removes those too.

// KEYS: presence, epoch, new node's index, last-seen, online; ARGV: deviceId, nodeId, at, node-index prefix, origin
const CONNECT = `
redis.call('ZREM', KEYS[4], ARGV[1])
local old = redis.call('HGET', KEYS[1], ARGV[1])
local epoch = redis.call('INCR', KEYS[2])
if old then
  local oldNode = string.match(old, '^(%S+)')
  redis.call('ZREM', ARGV[4] .. oldNode, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. epoch .. ' ' .. ARGV[3] .. ARGV[5])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[5], 0, ARGV[1])
return { epoch, old or false }`

// KEYS: presence, node index, last-seen, online; ARGV: deviceId, nodeId, epoch, at
const DISCONNECT = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local node, epoch = string.match(cur, '^(%S+) (%d+)')
if node ~= ARGV[2] or epoch ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1`

// KEYS: presence, node index, online, epoch, last-seen; ARGV: deviceId, nodeId, epoch, connectedAt, node-index
// prefix, origin. Returns { 1, fresh epoch } restored, { 2, entry } present (this very epoch), { 0, entry }
// superseded (a newer connection holds it).
const RESTORE = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local node, epoch = string.match(cur, '^(%S+) (%d+)')
  if tonumber(epoch) == tonumber(ARGV[3]) then return { 2, cur } end
  if tonumber(epoch) > tonumber(ARGV[3]) then return { 0, cur } end
  redis.call('ZREM', ARGV[5] .. node, ARGV[1])
end
local fresh = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. fresh .. ' ' .. ARGV[4] .. ARGV[6])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return { 1, tostring(fresh) }`

// KEYS: presence, node index, last-seen, online, the node's set of older versions; ARGV: nodeId, at.
// Only entries that still name this node are removed. Returns id, entry, id, entry, ...
const REMOVE_NODE = `
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
if redis.call('TYPE', KEYS[5]).ok == 'set' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do table.insert(ids, id) end
end
local removed = {}
for _, id in ipairs(ids) do
  local cur = redis.call('HGET', KEYS[1], id)
  if cur and string.match(cur, '^(%S+)') == ARGV[1] then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    table.insert(removed, id)
    table.insert(removed, cur)
  end
end
redis.call('DEL', KEYS[2], KEYS[5])
return removed`

// One page of the listing in one read. KEYS: index (all or one node's), presence; ARGV: lex start, count.
// Returns id, entry, id, entry, ...
const LIST = `
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
local raws = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  table.insert(out, id)
  table.insert(out, raws[i] or '')
end
return out`

const isTransport = (s: string | undefined): s is Transport => TRANSPORTS.includes(s as Transport)

/** The hash value's tail after connectedAt: empty without an origin. */
const originField = (origin: ConnectionOrigin | undefined): string => origin === undefined ? '' : ` ${origin.transport} ${origin.address}`

function parse (deviceId: string, raw: string): PresenceEntry {
  const [nodeId, epoch, connectedAt, transport, address] = raw.split(' ')
  return {
    deviceId,
    nodeId: nodeId as string,
    epoch: Number(epoch),
    connectedAt: Number(connectedAt),
    ...(isTransport(transport) && address !== undefined && { transport, address })
  }
}

export function createRedisPresenceStore ({ redis, prefix }: { redis: Redis, prefix: string }): PresenceStore {
  const presence = `${prefix}presence`
  const online = `${prefix}online`
  const nodePrefix = `${prefix}online:`
  const legacyNodePrefix = `${prefix}presence:`
  const lastSeen = `${prefix}last-seen`
  const epochKey = `${prefix}epoch`
  // Connect and disconnect run per connection: by SHA, so the scripts' text is not sent every time.
  const connectScript = redisScript(redis, CONNECT)
  const disconnectScript = redisScript(redis, DISCONNECT)
  const listScript = redisScript(redis, LIST)

  const pageOf = async (index: string, after: string | undefined, count: number): Promise<PresenceEntry[]> => {
    const flat = await listScript([index, presence], [after === undefined ? '-' : `(${after}`, count]) as string[]
    const out: PresenceEntry[] = []
    for (let i = 0; i < flat.length; i += 2) {
      const raw = flat[i + 1] as string
      // An index member without an entry cannot happen (one script writes both); skip rather than invent one.
      if (raw !== '') out.push(parse(flat[i] as string, raw))
    }
    return out
  }

  return {
    async connect (deviceId, nodeId, at, origin) {
      const [epoch, old] = await connectScript([presence, epochKey, nodePrefix + nodeId, lastSeen, online], [deviceId, nodeId, at, nodePrefix, originField(origin)]) as [number, string | null]
      return { entry: { deviceId, nodeId, epoch, connectedAt: at, ...origin }, replaced: old === null ? undefined : parse(deviceId, old) }
    },
    async disconnect (deviceId, nodeId, epoch, at) {
      return await disconnectScript([presence, nodePrefix + nodeId, lastSeen, online], [deviceId, nodeId, epoch, at]) === 1
    },
    async get (deviceId) {
      const raw = await redis.hget(presence, deviceId)
      return raw === null ? undefined : parse(deviceId, raw)
    },
    async getMany (deviceIds) {
      if (deviceIds.length === 0) return []
      const raws = await redis.hmget(presence, ...deviceIds)
      return deviceIds.map((id, i) => { const raw = raws[i]; return raw == null ? undefined : parse(id, raw) })
    },
    async lastSeen (deviceId) {
      const raw = await redis.zscore(lastSeen, deviceId)
      return raw === null ? undefined : Number(raw)
    },
    async count () {
      return await redis.zcard(online)
    },
    async list ({ after, limit, nodeId }) {
      const index = nodeId === undefined ? online : nodePrefix + nodeId
      const read = await pageOf(index, after, limit + 1)
      const entries = read.slice(0, limit)
      return { entries, next: read.length > limit ? entries.at(-1)?.deviceId : undefined }
    },
    async listNode (nodeId) {
      return (await pageOf(nodePrefix + nodeId, undefined, -1)).filter((e) => e.nodeId === nodeId)
    },
    async countNode (nodeId) {
      return await redis.zcard(nodePrefix + nodeId)
    },
    async restore (entry) {
      const origin = entry.transport === undefined || entry.address === undefined ? undefined : { transport: entry.transport, address: entry.address }
      const [code, raw] = await redis.eval(RESTORE, 5, presence, nodePrefix + entry.nodeId, online, epochKey, lastSeen, entry.deviceId, entry.nodeId, entry.epoch, entry.connectedAt, nodePrefix, originField(origin)) as [number, string]
      if (code === 1) return { result: 'restored', entry: { ...entry, epoch: Number(raw) } }
      return { result: code === 2 ? 'present' : 'superseded', entry: parse(entry.deviceId, raw) }
    },
    async staleSince (before, limit) {
      return await redis.zrangebyscore(lastSeen, '-inf', `(${before}`, 'LIMIT', 0, limit)
    },
    async forgetSeen (deviceId) {
      await redis.zrem(lastSeen, deviceId)
    },
    async removeNode (nodeId, at) {
      const flat = await redis.eval(REMOVE_NODE, 5, presence, nodePrefix + nodeId, lastSeen, online, legacyNodePrefix + nodeId, nodeId, at) as string[]
      const removed: PresenceEntry[] = []
      for (let i = 0; i < flat.length; i += 2) removed.push(parse(flat[i] as string, flat[i + 1] as string))
      return removed
    }
  }
}
