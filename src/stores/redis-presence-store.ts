import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import { TRANSPORTS, type ConnectionOrigin, type PresenceEntry, type PresenceStore, type Transport } from './presence-store.ts'

// {prefix}presence         hash deviceId -> "nodeId epoch connectedAt[ transport address][ connection]", with "- -"
//                          for a connection without an origin
// {prefix}online:{n}       sorted set of the ids of the devices node n holds, all scores 0 so it sorts by id
// {prefix}online-nodes     set of the nodes that have such an index
// The operators' listing of all online devices merges the nodes' indexes page by page, and the total is the sum of
// their ZCARDs: a cluster-wide index of its own cost a second sorted-set member per online device, about a third of
// presence's memory (docs/operators.md, Cost).
// Nodes before that kept the cluster-wide index at {prefix}online; nothing reads it any more.
// {prefix}last-seen        sorted set of offline devices, scored by the epoch ms of their last disconnect
// {prefix}epoch            counter that gives every connection its epoch
// Every write is one Lua script, so the hash and the indexes never disagree.
// Nodes before the sorted indexes kept a plain set at {prefix}presence:{n}; a dead-node cleanup removes those too.

// KEYS: presence, epoch, new node's index, last-seen, online-nodes; ARGV: deviceId, nodeId, at, node-index prefix,
// value tail (origin, connection), connection ('' for none). Returns { 0, epoch, replaced or false } connected,
// { 1, entry } adopted (this connection's own earlier write), { 2, entry } superseded (a later connect on another
// node holds it).
const CONNECT = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  if ARGV[6] ~= '' and string.match(old, '^%S+ %S+ %S+ %S+ %S+ (%S+)') == ARGV[6] then return { 1, old } end
  local oldNode, oldAt = string.match(old, '^(%S+) %S+ (%d+)')
  if oldNode ~= ARGV[2] and tonumber(oldAt) > tonumber(ARGV[3]) then return { 2, old } end
end
redis.call('ZREM', KEYS[4], ARGV[1])
local epoch = redis.call('INCR', KEYS[2])
if old then
  local oldNode = string.match(old, '^(%S+)')
  redis.call('ZREM', ARGV[4] .. oldNode, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. epoch .. ' ' .. ARGV[3] .. ARGV[5])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('SADD', KEYS[5], ARGV[2])
return { 0, epoch, old or false }`

// KEYS: presence, node index, last-seen; ARGV: deviceId, nodeId, epoch, at
const DISCONNECT = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local node, epoch = string.match(cur, '^(%S+) (%d+)')
if node ~= ARGV[2] or epoch ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1`

// KEYS: presence, node index, online-nodes, epoch, last-seen; ARGV: deviceId, nodeId, epoch, connectedAt, node-index
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
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
return { 1, tostring(fresh) }`

// KEYS: presence, node index, last-seen, online-nodes, the node's set of older versions; ARGV: nodeId, at.
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
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    table.insert(removed, id)
    table.insert(removed, cur)
  end
end
redis.call('DEL', KEYS[2], KEYS[5])
redis.call('SREM', KEYS[4], ARGV[1])
return removed`

// One page of the listing in one read; the hash is read 1,000 ids at a time because unpack() cannot pass more than
// about 8,000 values (LUAI_MAXCSTACK), and one node's whole listing (listNode, reconciliation) has as many ids as
// the node holds devices. KEYS: presence, online-nodes; ARGV: lex start, count (-1: all), node-index
// prefix, and a node id for one node's devices (none: every node's indexes, merged). Returns id, entry, id, entry, ...
const LIST = `
local count = tonumber(ARGV[2])
local nodes = { ARGV[4] }
if not ARGV[4] then nodes = redis.call('SMEMBERS', KEYS[2]) end
local ids = {}
for _, node in ipairs(nodes) do
  for _, id in ipairs(redis.call('ZRANGEBYLEX', ARGV[3] .. node, ARGV[1], '+', 'LIMIT', 0, count)) do table.insert(ids, id) end
end
if #ids == 0 then return {} end
if #nodes > 1 then
  table.sort(ids)
  if count >= 0 then
    for i = #ids, count + 1, -1 do table.remove(ids) end
  end
end
local out = {}
for first = 1, #ids, 1000 do
  local last = math.min(first + 999, #ids)
  local raws = redis.call('HMGET', KEYS[1], unpack(ids, first, last))
  for i = first, last do
    table.insert(out, ids[i])
    table.insert(out, raws[i - first + 1] or '')
  end
end
return out`

// KEYS: online-nodes; ARGV: node-index prefix. The sum of the nodes' index sizes; a node whose index is gone leaves the set.
const COUNT = `
local total = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('ZCARD', ARGV[1] .. node)
  if n == 0 then redis.call('SREM', KEYS[1], node) end
  total = total + n
end
return total`

// KEYS: node index, online-nodes; ARGV: nodeId. The node's count, and its name in online-nodes while it has entries
// (each node calls this every heartbeat period, so an index written by an older node gets listed).
const COUNT_NODE = `
local n = redis.call('ZCARD', KEYS[1])
if n > 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return n`

const isTransport = (s: string | undefined): s is Transport => TRANSPORTS.includes(s as Transport)

/** The hash value's tail after connectedAt: empty without an origin or a connection. */
function valueTail (origin: ConnectionOrigin | undefined, connection: string | undefined): string {
  const from = origin === undefined ? (connection === undefined ? '' : ' - -') : ` ${origin.transport} ${origin.address}`
  return connection === undefined ? from : `${from} ${connection}`
}

function parse (deviceId: string, raw: string): PresenceEntry {
  const [nodeId, epoch, connectedAt, transport, address, connection] = raw.split(' ')
  return {
    deviceId,
    nodeId: nodeId as string,
    epoch: Number(epoch),
    connectedAt: Number(connectedAt),
    ...(isTransport(transport) && address !== undefined && { transport, address }),
    ...(connection !== undefined && connection !== '' && { connection })
  }
}

export function createRedisPresenceStore ({ redis, prefix }: { redis: Redis, prefix: string }): PresenceStore {
  const presence = `${prefix}presence`
  const onlineNodes = `${prefix}online-nodes`
  const nodePrefix = `${prefix}online:`
  const legacyNodePrefix = `${prefix}presence:`
  const lastSeen = `${prefix}last-seen`
  const epochKey = `${prefix}epoch`
  // Connect and disconnect run per connection: by SHA, so the scripts' text is not sent every time.
  const connectScript = redisScript(redis, CONNECT)
  const disconnectScript = redisScript(redis, DISCONNECT)
  const listScript = redisScript(redis, LIST)
  const countScript = redisScript(redis, COUNT)
  const countNodeScript = redisScript(redis, COUNT_NODE)

  const pageOf = async (nodeId: string | undefined, after: string | undefined, count: number): Promise<PresenceEntry[]> => {
    const flat = await listScript([presence, onlineNodes], [after === undefined ? '-' : `(${after}`, count, nodePrefix, ...(nodeId === undefined ? [] : [nodeId])]) as string[]
    const out: PresenceEntry[] = []
    for (let i = 0; i < flat.length; i += 2) {
      const raw = flat[i + 1] as string
      // An index member without an entry cannot happen (one script writes both); skip rather than invent one.
      if (raw !== '') out.push(parse(flat[i] as string, raw))
    }
    return out
  }

  return {
    async connect (deviceId, nodeId, at, origin, connection) {
      const reply = await connectScript([presence, epochKey, nodePrefix + nodeId, lastSeen, onlineNodes], [deviceId, nodeId, at, nodePrefix, valueTail(origin, connection), connection ?? '']) as [0, number, string | null] | [1 | 2, string]
      if (reply[0] !== 0) return { result: reply[0] === 1 ? 'adopted' : 'superseded', entry: parse(deviceId, reply[1]), replaced: undefined }
      const [, epoch, old] = reply
      const entry: PresenceEntry = { deviceId, nodeId, epoch, connectedAt: at, ...origin, ...(connection !== undefined && { connection }) }
      return { result: 'connected', entry, replaced: old === null ? undefined : parse(deviceId, old) }
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
      return Number(await countScript([onlineNodes], [nodePrefix]))
    },
    async list ({ after, limit, nodeId }) {
      const read = await pageOf(nodeId, after, limit + 1)
      const entries = read.slice(0, limit)
      return { entries, next: read.length > limit ? entries.at(-1)?.deviceId : undefined }
    },
    async listNode (nodeId) {
      return (await pageOf(nodeId, undefined, -1)).filter((e) => e.nodeId === nodeId)
    },
    async countNode (nodeId) {
      return Number(await countNodeScript([nodePrefix + nodeId, onlineNodes], [nodeId]))
    },
    async restore (entry) {
      const origin = entry.transport === undefined || entry.address === undefined ? undefined : { transport: entry.transport, address: entry.address }
      const [code, raw] = await redis.eval(RESTORE, 5, presence, nodePrefix + entry.nodeId, onlineNodes, epochKey, lastSeen, entry.deviceId, entry.nodeId, entry.epoch, entry.connectedAt, nodePrefix, valueTail(origin, entry.connection)) as [number, string]
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
      const flat = await redis.eval(REMOVE_NODE, 5, presence, nodePrefix + nodeId, lastSeen, onlineNodes, legacyNodePrefix + nodeId, nodeId, at) as string[]
      const removed: PresenceEntry[] = []
      for (let i = 0; i < flat.length; i += 2) removed.push(parse(flat[i] as string, flat[i + 1] as string))
      return removed
    }
  }
}
