import type { Redis } from 'ioredis'
import type { BroadcastStore, LiveBroadcast } from './broadcast-store.ts'

// {prefix}bcast:{pushId}        string: the broadcast as JSON, expiring with the push's ttl
// {prefix}bcast-topic:{topic}   sorted set: push id -> expiresAt, the live broadcasts on one topic
// {prefix}bcast-live            sorted set: push id -> expiresAt, every live broadcast (a node's cache at start)
// Both sorted sets lose their expired members whenever one is written or read, and expire with their last member.

export interface RedisBroadcastStoreOptions {
  readonly redis: Redis
  readonly prefix: string
  /** The clock that decides what has expired (tests move their own); the bodies' Redis TTLs follow it. */
  readonly now?: () => number
}

export function createRedisBroadcastStore ({ redis, prefix, now = Date.now }: RedisBroadcastStoreOptions): BroadcastStore {
  const bodyKey = (pushId: string): string => `${prefix}bcast:${pushId}`
  const topicKey = (topic: string): string => `${prefix}bcast-topic:${topic}`
  const liveKey = `${prefix}bcast-live`

  async function read (index: string, at: number): Promise<LiveBroadcast[]> {
    // Trimmed by the clock, read as at `at`.
    const [, ids] = await redis.multi().zremrangebyscore(index, '-inf', now()).zrangebyscore(index, `(${at}`, '+inf').exec() ?? []
    const list = (ids?.[1] ?? []) as string[]
    if (list.length === 0) return []
    const raws = await redis.mget(...list.map(bodyKey))
    // A body may have expired between the two reads: it is skipped.
    return raws.flatMap((raw) => raw === null ? [] : [JSON.parse(raw) as LiveBroadcast])
  }

  return {
    async add (b) {
      const ttlMs = b.expiresAt - now()
      if (ttlMs <= 0) return
      const m = redis.multi().set(bodyKey(b.pushId), JSON.stringify(b), 'PX', ttlMs)
      for (const index of [topicKey(b.topic), liveKey]) {
        m.zremrangebyscore(index, '-inf', now()).zadd(index, b.expiresAt, b.pushId)
        // GT: the index lives as long as its longest-lived member.
        m.pexpireat(index, b.expiresAt, 'GT').pexpireat(index, b.expiresAt, 'NX')
      }
      await m.exec()
    },
    async liveOn (topic, at) {
      return await read(topicKey(topic), at)
    },
    async live (at) {
      return await read(liveKey, at)
    },
    async countLive (at) {
      return await redis.zcount(liveKey, `(${at}`, '+inf')
    }
  }
}
