// aedes-persistence-redis ships no types; this covers what Pushline calls.
declare module 'aedes-persistence-redis/asyncPersistence.js' {
  import type { Redis, RedisOptions } from 'ioredis'

  interface AsyncRedisPersistenceOptions extends RedisOptions {
    conn?: Redis
    maxSessionDelivery?: number
    packetTTL?: (packet: unknown) => number
  }

  class AsyncRedisPersistence {
    constructor (opts?: AsyncRedisPersistenceOptions)
    setup (broker: unknown): Promise<void>
    destroy (): Promise<void>
  }
  export default AsyncRedisPersistence
}
