import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { ConnectionControl, KickReason, KickTarget } from '../registry/connection-control.ts'

// Kicks travel on one Redis pub/sub channel; every broker node listens and closes the device if it holds it.
// Pub/sub is at most once: a node that misses a kick still refuses the revoked token on the next connect.

export interface RedisConnectionControlOptions {
  readonly publisher: Redis
  /** A dedicated connection for SUBSCRIBE; absent in a process without a broker (api role). */
  readonly subscriber?: Redis
  readonly channel: string
  readonly kickLocal?: (deviceId: string, reason: KickReason, target?: KickTarget) => void
  readonly logger: Logger
}

export interface RedisConnectionControl extends ConnectionControl {
  start (): Promise<void>
  close (): Promise<void>
}

export function createRedisConnectionControl (opts: RedisConnectionControlOptions): RedisConnectionControl {
  const { subscriber, channel } = opts
  const onMessage = (ch: string, message: string): void => {
    if (ch !== channel) return
    try {
      const { deviceId, reason, target } = JSON.parse(message) as { deviceId: string, reason: KickReason, target?: KickTarget }
      opts.kickLocal?.(deviceId, reason, target)
    } catch (err) {
      opts.logger.warn({ event: 'bad_kick_message', err: (err as Error).message }, 'ignored a malformed kick message')
    }
  }
  return {
    async start () {
      if (subscriber === undefined) return
      subscriber.on('message', onMessage)
      await subscriber.subscribe(channel)
    },
    async kick (deviceId, reason, target) {
      await opts.publisher.publish(channel, JSON.stringify({ deviceId, reason, target }))
    },
    async close () {
      if (subscriber === undefined) return
      subscriber.off('message', onMessage)
      await subscriber.unsubscribe(channel).catch(() => {})
    }
  }
}
