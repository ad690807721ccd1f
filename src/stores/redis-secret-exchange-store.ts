import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import type { CounterHit } from './counter-store.ts'
import type { Device } from './device-store.ts'
import { LIMITED_HITS_LUA, limitedHitsArgs, redisCounterKey } from './redis-counter-store.ts'
import { redisDeviceKey } from './redis-device-store.ts'
import { PUT_TOKEN_LUA, redisTokenKeys } from './redis-token-store.ts'
import type { SecretExchangeStore } from './secret-exchange-store.ts'

// One script, one round trip, on the keys of the counter, device and token stores.
// KEYS: the rate-limit counters (LIMITED_HITS_LUA), then lock, failures, device, token, device's token set.
// ARGV: the hits' head (limitedHitsArgs), then maxFailures, lockoutMs, the presented secret's stored form, token hash,
// expiresAt, and the token record's JSON up to its groups (the script appends the device's groups and the brace).
// Returns { 0, hits counted, { count, ttl, ... per hit, lock count, lock ttl } } refused, { 1 } bad credentials,
// { 2 } disabled, { 3, device JSON, failures } legacy secret form, { 4 } issued.
// The stored forms are compared with Lua's string equality: they are SHA-256 digests of the presented secret, whose
// bytes a caller cannot choose, so how long a comparison takes tells nothing about the stored one. An unknown id is
// decoded and compared like a known one (against a record no secret matches), so both cost the same.
const EXCHANGE = LIMITED_HITS_LUA + `
local lockKey, failuresKey, deviceKey = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
local a = 3 * n + 1
local maxFailures, lockoutMs, presented = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
-- One read for the three keys a request needs whatever its outcome.
local read = redis.call('MGET', lockKey, deviceKey, failuresKey)
local lock = tonumber(read[1] or '0')
if over or lock > 0 then
  out[#out + 1] = lock
  if lock > 0 then out[#out + 1] = redis.call('PTTL', lockKey) else out[#out + 1] = 0 end
  return { 0, hits, out }
end
local raw = read[2]
local device = cjson.decode(raw or '{"secretHash":"","enabled":false,"groups":[]}')
local failures = tonumber(read[3] or '0')
local stored = device['secretHash']
if type(stored) ~= 'string' then stored = '' end
if raw and string.sub(stored, 1, 7) ~= 'sha256$' then return { 3, raw, failures } end
if stored ~= presented or not raw then
  local f = redis.call('INCR', failuresKey)
  if f == 1 then redis.call('PEXPIRE', failuresKey, lockoutMs) end
  if f >= maxFailures then
    if redis.call('INCR', lockKey) == 1 then redis.call('PEXPIRE', lockKey, lockoutMs) end
    redis.call('DEL', failuresKey)
  end
  return { 1 }
end
if device['enabled'] ~= true then return { 2 } end
if failures > 0 then redis.call('DEL', failuresKey) end
local groups = '[]'
if type(device['groups']) == 'table' and #device['groups'] > 0 then groups = cjson.encode(device['groups']) end
local tokenKey, setKey, hash, expiresAt = KEYS[n + 4], KEYS[n + 5], ARGV[a + 4], ARGV[a + 5]
local value = ARGV[a + 6] .. groups .. '}'` + PUT_TOKEN_LUA + `
return { 4 }`

export function createRedisSecretExchangeStore ({ redis, prefix }: { redis: Redis, prefix: string }): SecretExchangeStore {
  const exchange = redisScript(redis, EXCHANGE)
  const tokenKeys = redisTokenKeys(prefix)
  const counterKey = (k: string): string => redisCounterKey(prefix, k)
  return {
    async exchange (r) {
      const keys = [...r.hits.map((h) => counterKey(h.key)), counterKey(r.lockKey), counterKey(r.failuresKey),
        redisDeviceKey(prefix, r.deviceId), tokenKeys.token(r.tokenHash), tokenKeys.device(r.deviceId)]
      // The record as TokenStore.put writes it, less the groups the script takes from the device.
      const recordHead = `${JSON.stringify({ deviceId: r.deviceId, expiresAt: r.expiresAt }).slice(0, -1)},"groups":`
      const args = [...limitedHitsArgs(r.hits), r.maxFailures, r.lockoutMs, r.secretHash, r.tokenHash, r.expiresAt, recordHead]
      const reply = await exchange(keys, args) as [number, ...unknown[]]
      switch (reply[0]) {
        case 0: {
          const [, counted, flat] = reply as [0, number, number[]]
          const t = Date.now()
          const at = (i: number): CounterHit => ({ count: flat[2 * i] as number, resetAt: t + Math.max(flat[2 * i + 1] as number, 0) })
          return { status: 'refused', hits: Array.from({ length: counted }, (_, i) => at(i)), lock: at(counted) }
        }
        case 1: return { status: 'bad-credentials' }
        case 2: return { status: 'disabled' }
        case 3: return { status: 'legacy', device: JSON.parse(reply[1] as string) as Device, failures: reply[2] as number }
        default: return { status: 'issued' }
      }
    }
  }
}
