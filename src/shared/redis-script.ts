import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * A Lua script run by its SHA1 (EVALSHA): the script's text goes to Redis once, not with every call as EVAL
 * sends it. After a Redis restart or SCRIPT FLUSH the first call gets NOSCRIPT and runs it with EVAL, which
 * also loads it again.
 */
export type RedisScript = (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => Promise<unknown>

export function redisScript (redis: Redis, lua: string): RedisScript {
  const sha = createHash('sha1').update(lua).digest('hex')
  return async (keys, args) => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await redis.eval(lua, keys.length, ...keys, ...args)
    }
  }
}
