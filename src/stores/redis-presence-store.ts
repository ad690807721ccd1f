import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import type { PresenceEntry, PresenceStore } from './presence-store.ts'

// {prefix}presence      hash deviceId -> "nodeId epoch connectedAt"   (HLEN = devices online)
// {prefix}presence:{n}  set of the device ids node n holds
// {prefix}last-seen     sorted set of offline devices, scored by the epoch ms of their last disconnect
// {prefix}epoch         counter that gives every connection its epoch
// Every write is one Lua script, so the hash and the node sets never disagree.

// KEYS: presence, epoch, node set of the new node, last-seen; ARGV: deviceId, nodeId, at, node-set prefix
const CONNECT = `
redis.call('ZREM', KEYS[4], ARGV[1])
local old = redis.call('HGET', KEYS[1], ARGV[1])
local epoch = redis.call('INCR', KEYS[2])
if old then
  local oldNode = string.match(old, '^(%S+)')
  redis.call('SREM', ARGV[4] .. oldNode, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. epoch .. ' ' .. ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return { epoch, old or false }`

// KEYS: presence, node set, last-seen; ARGV: deviceId, nodeId, epoch, at
const DISCONNECT = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local node, epoch = string.match(cur, '^(%S+) (%d+)')
if node ~= ARGV[2] or epoch ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1`

// KEYS: presence, node set; ARGV: deviceId, nodeId, epoch, connectedAt, node-set prefix.
// Returns 1 restored, 2 present (this very entry), 0 superseded (a newer connection holds it).
const RESTORE = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local node, epoch = string.match(cur, '^(%S+) (%d+)')
  if tonumber(epoch) == tonumber(ARGV[3]) then return 2 end
  if tonumber(epoch) > tonumber(ARGV[3]) then return 0 end
  redis.call('SREM', ARGV[5] .. node, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1`

// KEYS: presence, node set, last-seen; ARGV: nodeId, at. Only entries that still name this node are removed.
const REMOVE_NODE = `
local ids = redis.call('SMEMBERS', KEYS[2])
local removed = {}
for _, id in ipairs(ids) do
  local cur = redis.call('HGET', KEYS[1], id)
  if cur and string.match(cur, '^(%S+)') == ARGV[1] then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    table.insert(removed, id)
  end
end
redis.call('DEL', KEYS[2])
return removed`

function parse (deviceId: string, raw: string): PresenceEntry {
  const [nodeId, epoch, connectedAt] = raw.split(' ')
  return { deviceId, nodeId: nodeId as string, epoch: Number(epoch), connectedAt: Number(connectedAt) }
}

export function createRedisPresenceStore ({ redis, prefix }: { redis: Redis, prefix: string }): PresenceStore {
  const presence = `${prefix}presence`
  const nodePrefix = `${prefix}presence:`
  const lastSeen = `${prefix}last-seen`
  const epochKey = `${prefix}epoch`
  // Connect and disconnect run per connection: by SHA, so the scripts' text is not sent every time.
  const connectScript = redisScript(redis, CONNECT)
  const disconnectScript = redisScript(redis, DISCONNECT)

  return {
    async connect (deviceId, nodeId, at) {
      const [epoch, old] = await connectScript([presence, epochKey, nodePrefix + nodeId, lastSeen], [deviceId, nodeId, at, nodePrefix]) as [number, string | null]
      return { entry: { deviceId, nodeId, epoch, connectedAt: at }, replaced: old === null ? undefined : parse(deviceId, old) }
    },
    async disconnect (deviceId, nodeId, epoch, at) {
      return await disconnectScript([presence, nodePrefix + nodeId, lastSeen], [deviceId, nodeId, epoch, at]) === 1
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
      return await redis.hlen(presence)
    },
    async listNode (nodeId) {
      const ids = await redis.smembers(nodePrefix + nodeId)
      if (ids.length === 0) return []
      const raws = await redis.hmget(presence, ...ids)
      const out: PresenceEntry[] = []
      ids.forEach((id, i) => {
        const raw = raws[i]
        if (raw !== null && raw !== undefined) {
          const e = parse(id, raw)
          if (e.nodeId === nodeId) out.push(e)
        }
      })
      return out
    },
    async countNode (nodeId) {
      return await redis.scard(nodePrefix + nodeId)
    },
    async restore (entry) {
      const result = await redis.eval(RESTORE, 2, presence, nodePrefix + entry.nodeId, entry.deviceId, entry.nodeId, entry.epoch, entry.connectedAt, nodePrefix)
      return result === 1 ? 'restored' : result === 2 ? 'present' : 'superseded'
    },
    async staleSince (before, limit) {
      return await redis.zrangebyscore(lastSeen, '-inf', `(${before}`, 'LIMIT', 0, limit)
    },
    async forgetSeen (deviceId) {
      await redis.zrem(lastSeen, deviceId)
    },
    async removeNode (nodeId, at) {
      return await redis.eval(REMOVE_NODE, 3, presence, nodePrefix + nodeId, lastSeen, nodeId, at) as string[]
    }
  }
}
