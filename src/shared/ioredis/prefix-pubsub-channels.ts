// mqemitter-redis publishes and subscribes on the MQTT topic itself, and ioredis's keyPrefix does not cover
// channels: two deployments on one Redis (each with its own PUSHLINE_REDIS_PREFIX) shared messages, and a device
// connecting to one kicked the device with the same id off the other. The prefix is added on the way out only:
// mqemitter-redis reads the topic from the message, not the channel. The prefix's characters ([A-Za-z0-9_.:-],
// checked by the config) are not glob-special, so patterns stay intact.
// Touches: the publish, subscribe, psubscribe, unsubscribe and punsubscribe methods of the two connections
// (replaced per instance). Upstream lacks a channel prefix option in mqemitter-redis and in ioredis.

import type { Redis } from 'ioredis'
import { replaceChannelMethod } from './internals.ts'

export function prefixChannels (pubConn: Redis, subConn: Redis, prefix: string): void {
  const wrap = (conn: Redis, method: 'publish' | 'subscribe' | 'psubscribe' | 'unsubscribe' | 'punsubscribe'): void => {
    // mqemitter-redis passes one channel as a string; ioredis's resubscribe after a reconnect passes the array of
    // channels it recorded, which carry the prefix already.
    replaceChannelMethod(conn, method, (original) => (channel, ...rest) => original(typeof channel === 'string' ? prefix + channel : channel, ...rest))
  }
  wrap(pubConn, 'publish')
  for (const method of ['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe'] as const) wrap(subConn, method)
}
