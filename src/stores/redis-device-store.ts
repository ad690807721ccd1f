import type { Redis } from 'ioredis'
import { redisScript } from '../shared/redis-script.ts'
import { applyPatch, type Device, type DeviceListQuery, type DevicePage, type DevicePatch, type DeviceStore } from './device-store.ts'

// Layout: {prefix}device:{id} holds the device as JSON; {prefix}devices and {prefix}group:{g} are sorted sets
// (all scores 0, so they sort by id) used for paging. Writes go through Lua so a device and its indexes never disagree.

// KEYS[1] device, KEYS[2] index, KEYS[3..] group indexes; ARGV[1] json, ARGV[2] id
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[2]) end
return 1`

// Compare-and-set: the caller read ARGV[1]; the write happens only if nobody changed the device since.
// KEYS[1] device, then ARGV[4] old group keys, then the new group keys; ARGV[1] old json, ARGV[2] new json, ARGV[3] id, ARGV[4] #old groups
const UPDATE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
local nOld = tonumber(ARGV[4])
for i = 2, 1 + nOld do redis.call('ZREM', KEYS[i], ARGV[3]) end
for i = 2 + nOld, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[3]) end
return 1`

// KEYS[1] device, KEYS[2] index, KEYS[3..] group indexes; ARGV[1] json read by the caller, ARGV[2] id
const DELETE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
return 1`

// Many creates in one atomic step, one device after the other, each as CREATE above.
// KEYS[1] index, then per device its key followed by its group keys; ARGV[1] count, then per device: id, json,
// number of groups. Returns per device 1 (created) or 0 (id taken).
const CREATE_MANY = `
local n = tonumber(ARGV[1])
local k = 2
local out = {}
for i = 0, n - 1 do
  local id, json, groups = ARGV[2 + i * 3], ARGV[3 + i * 3], tonumber(ARGV[4 + i * 3])
  if redis.call('EXISTS', KEYS[k]) == 1 then
    out[i + 1] = 0
  else
    redis.call('SET', KEYS[k], json)
    redis.call('ZADD', KEYS[1], 0, id)
    for g = 1, groups do redis.call('ZADD', KEYS[k + g], 0, id) end
    out[i + 1] = 1
  end
  k = k + 1 + groups
end
return out`

const MAX_CAS_TRIES = 20
/** Devices per CREATE_MANY call: a few milliseconds of Redis time, so other clients' commands interleave between chunks. */
const CREATE_CHUNK = 500

export interface RedisDeviceStoreOptions {
  readonly redis: Redis
  readonly prefix: string
}

/** The device key above, for scripts that check a device exists while writing something else. */
export function redisDeviceKey (prefix: string, id: string): string {
  return `${prefix}device:${id}`
}

export function createRedisDeviceStore ({ redis, prefix }: RedisDeviceStoreOptions): DeviceStore {
  const deviceKey = (id: string): string => redisDeviceKey(prefix, id)
  const indexKey = `${prefix}devices`
  const groupKey = (g: string): string => `${prefix}group:${g}`

  const createMany = redisScript(redis, CREATE_MANY)

  async function readRaw (id: string): Promise<string | null> {
    return await redis.get(deviceKey(id))
  }

  return {
    async create (device) {
      const keys = [deviceKey(device.id), indexKey, ...device.groups.map(groupKey)]
      const created = await redis.eval(CREATE, keys.length, ...keys, JSON.stringify(device), device.id)
      return created === 1
    },

    async createMany (list) {
      const chunks: Array<Promise<unknown>> = []
      for (let from = 0; from < list.length; from += CREATE_CHUNK) {
        const chunk = list.slice(from, from + CREATE_CHUNK)
        const keys = [indexKey]
        const args: Array<string | number> = [chunk.length]
        for (const d of chunk) {
          keys.push(deviceKey(d.id), ...d.groups.map(groupKey))
          args.push(d.id, JSON.stringify(d), d.groups.length)
        }
        // Sent together: ioredis writes them back to back on one connection, so the chunks cost one round trip.
        chunks.push(createMany(keys, args))
      }
      return (await Promise.all(chunks)).flatMap((r) => (r as number[]).map((x) => x === 1))
    },

    async get (id) {
      const raw = await readRaw(id)
      return raw === null ? undefined : JSON.parse(raw) as Device
    },

    async list (query: DeviceListQuery): Promise<DevicePage> {
      const key = query.group === undefined ? indexKey : groupKey(query.group)
      const from = query.after === undefined ? '-' : `(${query.after}`
      const ids = await redis.zrangebylex(key, from, '+', 'LIMIT', 0, query.limit + 1)
      const pageIds = ids.slice(0, query.limit)
      if (pageIds.length === 0) return { devices: [], next: undefined }
      const raws = await redis.mget(pageIds.map(deviceKey))
      // An id whose record vanished between the two reads was deleted meanwhile: skip it.
      const devices = raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as Device)
      return { devices, next: ids.length > query.limit ? pageIds[pageIds.length - 1] : undefined }
    },

    async update (id: string, patch: DevicePatch, now: number) {
      for (let i = 0; i < MAX_CAS_TRIES; i++) {
        const raw = await readRaw(id)
        if (raw === null) return undefined
        const old = JSON.parse(raw) as Device
        const updated = applyPatch(old, patch, now)
        const keys = [deviceKey(id), ...old.groups.map(groupKey), ...updated.groups.map(groupKey)]
        const ok = await redis.eval(UPDATE, keys.length, ...keys, raw, JSON.stringify(updated), id, old.groups.length)
        if (ok === 1) return updated
      }
      throw new Error(`device ${id} changed concurrently ${MAX_CAS_TRIES} times in a row`)
    },

    async delete (id) {
      for (let i = 0; i < MAX_CAS_TRIES; i++) {
        const raw = await readRaw(id)
        if (raw === null) return false
        const old = JSON.parse(raw) as Device
        const keys = [deviceKey(id), indexKey, ...old.groups.map(groupKey)]
        const ok = await redis.eval(DELETE, keys.length, ...keys, raw, id)
        if (ok === 1) return true
      }
      throw new Error(`device ${id} changed concurrently ${MAX_CAS_TRIES} times in a row`)
    },

    async replaceSecretHash (id, expected, next) {
      for (let i = 0; i < MAX_CAS_TRIES; i++) {
        const raw = await readRaw(id)
        if (raw === null) return false
        const old = JSON.parse(raw) as Device
        if (old.secretHash !== expected) return false
        const keys = [deviceKey(id), ...old.groups.map(groupKey), ...old.groups.map(groupKey)]
        const ok = await redis.eval(UPDATE, keys.length, ...keys, raw, JSON.stringify({ ...old, secretHash: next }), id, old.groups.length)
        if (ok === 1) return true
      }
      throw new Error(`device ${id} changed concurrently ${MAX_CAS_TRIES} times in a row`)
    },

    async count () {
      return await redis.zcard(indexKey)
    }
  }
}
