// The typed view of what the platform touches on ioredis connections beyond their declared API: the socket of the
// current connection (`stream`, replaced at every reconnect) and the instance methods it wraps. Only the files of
// this folder reach past ioredis's types; docs/development.md, "Adaptations of dependencies", lists why.

import type { Duplex } from 'node:stream'
import { Command, type Redis } from 'ioredis'
import { PushlineError } from '../errors.ts'

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

export type SendCommand = (command: Command, stream?: unknown) => unknown

/**
 * Replaces the connection's sendCommand on the instance: every command (single, pipelined, MULTI, script) passes it.
 * IOT_ERR_DEPENDENCY when this ioredis lacks the method or a command's `isResolved`, `resolve` or `reject`.
 */
export function replaceSendCommand (redis: Redis, make: (original: SendCommand) => SendCommand): void {
  const probe = new Command('ping', [])
  const missing = [
    ...(typeof Reflect.get(redis, 'sendCommand') === 'function' ? [] : ['Redis#sendCommand']),
    ...(typeof Reflect.get(probe, 'isResolved') === 'boolean' ? [] : ['Command#isResolved']),
    ...(typeof Reflect.get(probe, 'resolve') === 'function' ? [] : ['Command#resolve']),
    ...(typeof Reflect.get(probe, 'reject') === 'function' ? [] : ['Command#reject'])
  ]
  if (missing.length > 0) {
    throw new PushlineError('IOT_ERR_DEPENDENCY', `ioredis lacks ${missing.join(', ')}, which the command timeout uses: install the ioredis version package.json pins`, { dependency: 'ioredis', missing })
  }
  const original = redis.sendCommand.bind(redis) as SendCommand
  Reflect.set(redis, 'sendCommand', make(original))
}
