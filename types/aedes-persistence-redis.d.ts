// aedes-persistence-redis ships no types; this covers what Pushline calls.
// Its main export wraps the async Redis persistence in aedes-persistence's callback adapter, which is the
// shape aedes 1.2 calls (promises for subscriptions, Node streams for retained messages).
declare module 'aedes-persistence-redis' {
  import type { Redis, RedisOptions } from 'ioredis'

  interface RedisPersistenceOptions extends RedisOptions {
    conn?: Redis
    maxSessionDelivery?: number
    packetTTL?: (packet: unknown) => number
  }

  interface RedisPersistence {
    setup (broker: unknown): Promise<void>
    destroy (cb?: () => void): unknown
  }
  export default function redisPersistence (opts?: RedisPersistenceOptions): RedisPersistence
}
