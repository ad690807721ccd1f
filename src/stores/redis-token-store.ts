import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import type { TokenRecord, TokenStore } from './token-store.ts'

// {prefix}token:{hash} = JSON of the record, with a matching expiry; {prefix}device-tokens:{id} = set of hashes.

/**
 * Lua: stores `value` at `tokenKey` until `expiresAt` (ms) and adds `hash` to the device's set `setKey`, which lives as
 * long as its longest token; the five are locals of the enclosing script.
 */
export const PUT_TOKEN_LUA = `
redis.call('SET', tokenKey, value, 'PXAT', expiresAt)
redis.call('SADD', setKey, hash)
if redis.call('PEXPIRETIME', setKey) < tonumber(expiresAt) then redis.call('PEXPIREAT', setKey, expiresAt) end`

// KEYS[1] token, KEYS[2] device set; ARGV[1] value, ARGV[2] expiresAt (ms), ARGV[3] hash
const PUT = `
local tokenKey, setKey, value, expiresAt, hash = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]` + PUT_TOKEN_LUA + `
return 1`

/** Where a token and a device's set of token hashes live in Redis, for scripts of other stores that write tokens. */
export function redisTokenKeys (prefix: string): { token: (hash: string) => string, device: (id: string) => string } {
  return { token: (hash) => `${prefix}token:${hash}`, device: (id) => `${prefix}device-tokens:${id}` }
}

// KEYS[1] device set; ARGV[1] token key prefix
const REVOKE = `
local hashes = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, h in ipairs(hashes) do n = n + redis.call('DEL', ARGV[1] .. h) end
redis.call('DEL', KEYS[1])
return n`

// KEYS[1] token, KEYS[2] device set; ARGV[1] hash
const DELETE = `
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1`

// KEYS[1] token, KEYS[2] the claimed device's set; ARGV[1] hash, ARGV[2] device id. Returns the record, or nil when
// the token is unknown or belongs to another device (then it is left alone).
const TAKE = `
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
if cjson.decode(raw)['deviceId'] ~= ARGV[2] then return nil end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return raw`

export interface RedisTokenStoreOptions {
  readonly redis: Redis
  readonly prefix: string
}

export function createRedisTokenStore ({ redis, prefix }: RedisTokenStoreOptions): TokenStore {
  const tokenPrefix = redisTokenKeys(prefix).token('')
  const deviceKey = redisTokenKeys(prefix).device

  const parse = (raw: string): TokenRecord => JSON.parse(raw) as TokenRecord
  const take = redisScript(redis, TAKE)
  const put = redisScript(redis, PUT)

  return {
    async put (hash, record) {
      await put([tokenPrefix + hash, deviceKey(record.deviceId)], [JSON.stringify(record), record.expiresAt, hash])
    },
    async get (hash, now) {
      const raw = await redis.get(tokenPrefix + hash)
      if (raw === null) return undefined
      const rec = parse(raw)
      // Redis expires the key itself; this guards against clock skew between nodes and Redis.
      return rec.expiresAt > now ? rec : undefined
    },
    async take (hash, deviceId, now) {
      const raw = await take([tokenPrefix + hash, deviceKey(deviceId)], [hash, deviceId]) as string | null
      if (raw === null) return undefined
      const rec = parse(raw)
      return rec.expiresAt > now ? rec : undefined
    },
    async delete (hash) {
      const raw = await redis.get(tokenPrefix + hash)
      if (raw === null) return
      await redis.eval(DELETE, 2, tokenPrefix + hash, deviceKey(parse(raw).deviceId), hash)
    },
    async revokeDevice (deviceId) {
      return Number(await redis.eval(REVOKE, 1, deviceKey(deviceId), tokenPrefix))
    }
  }
}
