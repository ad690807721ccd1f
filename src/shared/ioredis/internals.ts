// The typed view of what the platform touches on ioredis connections beyond their declared API: the socket of the
// current connection (`stream`, replaced at every reconnect) and the instance methods it wraps. Only the files of
// this folder reach past ioredis's types; docs/development.md, "Adaptations of dependencies", lists why.

import type { Duplex } from 'node:stream'
import type { Redis } from 'ioredis'

/** The connection's current socket, once ioredis has opened one; undefined if this ioredis keeps it elsewhere. */
export function socketOf (redis: Redis): Duplex | undefined {
  const stream: unknown = Reflect.get(redis, 'stream')
  return typeof stream === 'object' && stream !== null && typeof (stream as Partial<Duplex>).write === 'function' ? stream as Duplex : undefined
}

/** The pub/sub methods whose first argument is a channel (or pattern), as mqemitter-redis calls them. */
export type ChannelMethod = 'publish' | 'subscribe' | 'psubscribe' | 'unsubscribe' | 'punsubscribe'
export type ChannelCall = (channel: string | string[], ...rest: unknown[]) => unknown

/** Replaces one of the connection's pub/sub methods on the instance (ioredis declares them as overloads). */
export function replaceChannelMethod (redis: Redis, method: ChannelMethod, make: (original: ChannelCall) => ChannelCall): void {
  const target = redis as unknown as Record<ChannelMethod, ChannelCall>
  target[method] = make(target[method].bind(redis))
}
