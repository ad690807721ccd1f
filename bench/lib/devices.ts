// Devices and tokens for benchmarks.
// - Redis mode: seedRedisTokens() writes tokens straight into Redis with Pushline's own token store (the HTTP
//   token endpoint verifies a scrypt secret per device, far too slow for tens of thousands).
// - Embedded mode (no Redis): provisionOverHttp() creates devices and issues tokens through the HTTP API.

import { Redis } from 'ioredis'
import { generateToken, hashToken } from '../../src/auth/device-token.ts'
import { createRedisTokenStore } from '../../src/stores/redis-token-store.ts'
import type { ConnectCredentials } from './connect-protocol.ts'

export interface DeviceCredential {
  readonly deviceId: string
  readonly token: string
}

/** `count` device ids "<prefix>-<n>", valid device ids (1 to 64 of [A-Za-z0-9_.-]). */
export function deviceIds (prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${i}`)
}

/** How a device connects: clientId = username = device id, password = token. */
export function deviceClients (devices: readonly DeviceCredential[]): ConnectCredentials[] {
  return devices.map((d) => ({ clientId: d.deviceId, username: d.deviceId, password: d.token }))
}

/** Clients without credentials, for anonymous brokers. */
export function anonymousClients (ids: readonly string[]): ConnectCredentials[] {
  return ids.map((clientId) => ({ clientId }))
}

/** Runs `fn` over `items` with at most `concurrency` calls pending. */
export async function mapConcurrent<T, R> (items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane))
  return out
}

export interface SeedRedisTokensOptions {
  readonly redisUrl: string
  /** PUSHLINE_REDIS_PREFIX of the platform under test. */
  readonly prefix: string
  readonly deviceIds: readonly string[]
  readonly groups?: readonly string[]
  /** Default one hour. */
  readonly ttlMs?: number
  /** Writes in flight at once (default 500). */
  readonly concurrency?: number
}

/** A fresh token per device, stored as Pushline's token store stores it; resolves with the plain tokens. */
export async function seedRedisTokens (opts: SeedRedisTokensOptions): Promise<DeviceCredential[]> {
  const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {}) // commands fail with the reason; no unhandled 'error' events
  try {
    const store = createRedisTokenStore({ redis, prefix: opts.prefix })
    const expiresAt = Date.now() + (opts.ttlMs ?? 3_600_000)
    const groups = [...(opts.groups ?? [])]
    return await mapConcurrent(opts.deviceIds, opts.concurrency ?? 500, async (deviceId) => {
      const token = generateToken()
      await store.put(hashToken(token), { deviceId, expiresAt, groups })
      return { deviceId, token }
    })
  } finally {
    redis.disconnect()
  }
}

export interface ProvisionOverHttpOptions {
  readonly httpUrl: string
  readonly adminKey: string
  readonly deviceIds: readonly string[]
  readonly groups?: readonly string[]
  /** Requests in flight at once (default 16). */
  readonly concurrency?: number
}

async function postJson (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) })
  const text = await res.text()
  if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${text.slice(0, 200)}`)
  return JSON.parse(text) as Record<string, unknown>
}

/**
 * Creates each device (POST /v1/admin/devices) and issues its token (POST /v1/devices/{id}/token), as an
 * operator and a device would.
 */
export async function provisionOverHttp (opts: ProvisionOverHttpOptions): Promise<DeviceCredential[]> {
  const auth = { authorization: `Bearer ${opts.adminKey}` }
  return await mapConcurrent(opts.deviceIds, opts.concurrency ?? 16, async (deviceId) => {
    const created = await postJson(`${opts.httpUrl}/v1/admin/devices`, { id: deviceId, groups: [...(opts.groups ?? [])] }, auth)
    const issued = await postJson(`${opts.httpUrl}/v1/devices/${encodeURIComponent(deviceId)}/token`, { secret: created.secret })
    return { deviceId, token: issued.token as string }
  })
}

/** Deletes every key under `prefix` (SCAN + UNLINK); resolves to how many. */
export async function deleteRedisPrefix (redisUrl: string, prefix: string): Promise<number> {
  if (prefix.length < 4) throw new Error(`refusing to delete keys under the short prefix "${prefix}"`)
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {}) // commands fail with the reason; no unhandled 'error' events
  let deleted = 0
  try {
    const pattern = prefix.replace(/[*?[\]\\]/g, '\\$&') + '*'
    let cursor = '0'
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = nextCursor
      if (keys.length > 0) deleted += await redis.unlink(...keys)
    } while (cursor !== '0')
    return deleted
  } finally {
    redis.disconnect()
  }
}
