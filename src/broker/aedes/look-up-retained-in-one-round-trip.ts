import { Readable } from 'node:stream'
import type { Redis } from 'ioredis'
import { sessionPersistence, type RetainedPacket } from './internals.ts'

// aedes looks up the retained messages of a SUBSCRIBE's granted filters (handlers/subscribe.js) through
// persistence.createRetainedStreamCombi, and aedes-persistence-redis reads each filter without a wildcard with its
// own HGET on the `retained` hash, one after another: a device subscribing to three filters costs three round
// trips, nearly always for nothing. Here the filters without a wildcard are read in one HMGET on the same hash; only
// the filters that have a retained message, and the wildcard ones, go on to the persistence's own lookup, which
// decodes the messages and scans for the wildcards as before. The messages and their order are the ones the
// persistence gives for the whole list: the exact filters' in the SUBSCRIBE's order, then the wildcard matches not
// already sent.
// Touches: persistence.createRetainedStreamCombi (wrapped), and reads the persistence's `retained` hash (key and
// field layout of aedes-persistence-redis without Redis Cluster) through the connection it was built with.
// Upstream lacks a lookup of several filters in one round trip.

/** The hash where aedes-persistence-redis (single Redis, not Cluster) keeps each retained message under its topic. */
const RETAINED_HASH = 'retained'

function hasWildcard (filter: string): boolean {
  return filter.includes('+') || filter.includes('#')
}

/**
 * Wraps the Redis persistence's retained lookup so that a SUBSCRIBE's filters without a wildcard cost one round
 * trip. `redis` is the connection the persistence was built with (same key prefix).
 */
export function lookUpRetainedInOneRoundTrip<P extends object> (persistence: P, redis: Pick<Redis, 'hmgetBuffer'>): P {
  const store = sessionPersistence(persistence)
  const lookUp = store.createRetainedStreamCombi.bind(persistence)
  async function * retained (filters: string[]): AsyncGenerator<RetainedPacket> {
    const exact = filters.filter((f) => !hasWildcard(f))
    const wildcards = filters.filter(hasWildcard)
    const values = exact.length === 0 ? [] : await redis.hmgetBuffer(RETAINED_HASH, ...exact)
    const found = exact.filter((_, i) => values[i] !== null && values[i] !== undefined)
    if (found.length === 0 && wildcards.length === 0) return
    yield * lookUp([...found, ...wildcards])
  }
  // Only wildcards: nothing to batch, the persistence's own lookup runs as it is.
  store.createRetainedStreamCombi = (filters) => filters.every(hasWildcard) ? lookUp(filters) : Readable.from(retained(filters))
  return persistence
}
