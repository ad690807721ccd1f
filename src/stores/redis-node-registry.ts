import type { Redis } from 'ioredis'
import type { NodeRecord, NodeRegistry } from './node-registry.ts'

// {prefix}node:{id} = JSON record with a TTL; {prefix}nodes = set of member ids; {prefix}node-drain:{id} = drain order.

// KEYS: members, record. ARGV: node id. The check and the removal in one step, so a node that heartbeats in between
// keeps its membership.
const FORGET_DEAD = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('SREM', KEYS[1], ARGV[1])`

export function createRedisNodeRegistry ({ redis, prefix }: { redis: Redis, prefix: string }): NodeRegistry {
  const recordKey = (id: string): string => `${prefix}node:${id}`
  const members = `${prefix}nodes`
  const drainKey = (id: string): string => `${prefix}node-drain:${id}`

  async function memberRecords (): Promise<Array<[string, NodeRecord | undefined]>> {
    const ids = (await redis.smembers(members)).sort()
    if (ids.length === 0) return []
    const raws = await redis.mget(ids.map(recordKey))
    return ids.map((id, i) => [id, raws[i] == null ? undefined : JSON.parse(raws[i] as string) as NodeRecord])
  }

  return {
    async heartbeat (record, ttlMs) {
      const replies = await redis.multi().exists(recordKey(record.nodeId)).set(recordKey(record.nodeId), JSON.stringify(record), 'PX', ttlMs).sadd(members, record.nodeId).exec()
      if (replies === null) throw new Error('heartbeat: transaction discarded')
      for (const [err] of replies) if (err !== null) throw err
      return replies[0]?.[1] === 1
    },
    async list () {
      return (await memberRecords()).flatMap(([, r]) => r === undefined ? [] : [r])
    },
    async get (nodeId) {
      const raw = await redis.get(recordKey(nodeId))
      return raw === null ? undefined : JSON.parse(raw) as NodeRecord
    },
    async dead () {
      return (await memberRecords()).filter(([, r]) => r === undefined).map(([id]) => id)
    },
    async forget (nodeId) {
      await redis.multi().srem(members, nodeId).del(recordKey(nodeId), drainKey(nodeId)).exec()
    },
    async forgetDead (nodeId) {
      return await redis.eval(FORGET_DEAD, 2, members, recordKey(nodeId), nodeId) === 1
    },
    async setDrain (nodeId, draining) {
      if (draining) await redis.set(drainKey(nodeId), '1')
      else await redis.del(drainKey(nodeId))
    },
    async drainRequested (nodeId) {
      return await redis.exists(drainKey(nodeId)) === 1
    }
  }
}
