import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { hashSecret, legacyScryptHash } from '../../src/auth/secret-hash.ts'
import { createDeviceService, type DeviceService } from '../../src/registry/device-service.ts'
import type { DeviceStore } from '../../src/stores/device-store.ts'
import { createMemoryDeviceStore } from '../../src/stores/memory-device-store.ts'
import { createMemoryHistoryStore } from '../../src/stores/memory-history-store.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import { createMemoryTokenStore } from '../../src/stores/memory-token-store.ts'
import { createRedisDeviceStore } from '../../src/stores/redis-device-store.ts'
import { createRedisHistoryStore } from '../../src/stores/redis-history-store.ts'
import { createRedisTokenStore } from '../../src/stores/redis-token-store.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemorySecretExchangeStore } from '../../src/stores/memory-secret-exchange-store.ts'
import { createRedisSecretExchangeStore } from '../../src/stores/redis-secret-exchange-store.ts'
import { connectRedis, uniquePrefix } from '../helpers/services.ts'

// The device service over memory and over Redis stores: secrets stored by older releases (scrypt) still work and
// are replaced by their digest on first use.

const limits = { maxMessages: 100, maxAgeMs: 3600_000 }
const broker = { nodeId: 'n1', mqtt: 'mqtt://127.0.0.1:1883', ws: 'ws://127.0.0.1:8083/mqtt' }

function build (t: TestContext, redis: boolean): { devices: DeviceStore, service: DeviceService } {
  let devices: DeviceStore
  let service: DeviceService
  const common = { connections: { kick: async () => {} }, assigner: { assign: async () => broker }, presence: createMemoryPresenceStore(), tokenTtlMs: 60_000 }
  if (redis) {
    const r = connectRedis(t)
    const prefix = uniquePrefix()
    devices = createRedisDeviceStore({ redis: r, prefix })
    service = createDeviceService({ ...common, devices, tokens: createRedisTokenStore({ redis: r, prefix }), exchanges: createRedisSecretExchangeStore({ redis: r, prefix }), history: createRedisHistoryStore({ redis: r, prefix, limits }) })
  } else {
    devices = createMemoryDeviceStore()
    const tokens = createMemoryTokenStore()
    const exchanges = createMemorySecretExchangeStore({ counters: createMemoryCounterStore(), devices, tokens })
    service = createDeviceService({ ...common, devices, tokens, exchanges, history: createMemoryHistoryStore(limits) })
  }
  return { devices, service }
}

for (const redis of [false, true]) {
  const name = redis ? 'redis stores' : 'memory stores'

  test(`${name}: a secret stored as an old scrypt hash still gets a token and is replaced by its digest on that first use`, { timeout: 20_000 }, async (t) => {
    const { devices, service } = build(t, redis)
    const secret = 'an-old-secret-from-an-earlier-release'
    const t0 = Date.now()
    await devices.create({ id: 'old-1', groups: ['g'], metadata: {}, secretHash: await legacyScryptHash(secret, 10), enabled: true, createdAt: t0, updatedAt: t0 })
    await assert.rejects(service.issueToken('old-1', { secret: secret + 'x' }), /unknown device, wrong secret/)
    assert.match((await devices.get('old-1'))?.secretHash ?? '', /^scrypt\$/, 'a wrong secret upgrades nothing')
    const issued = await service.issueToken('old-1', { secret })
    assert.equal(typeof issued.token, 'string')
    assert.equal((await devices.get('old-1'))?.secretHash, hashSecret(secret))
    await service.issueToken('old-1', { secret })
    await assert.rejects(service.issueToken('old-1', { secret: secret + 'x' }), /unknown device, wrong secret/)
  })

  test(`${name}: new and rotated secrets are stored as digests; unknown ids and wrong secrets get the same error`, { timeout: 20_000 }, async (t) => {
    const { devices, service } = build(t, redis)
    const created = await service.create({ id: 'new-1' })
    assert.equal((await devices.get('new-1'))?.secretHash, hashSecret(created.secret))
    const rotated = await service.rotateSecret('new-1')
    assert.equal((await devices.get('new-1'))?.secretHash, hashSecret(rotated.secret))
    const refusal = async (id: string, secret: string): Promise<unknown> => await service.issueToken(id, { secret }).then(() => 'issued', (err: Error & { code?: string }) => [err.code, err.message])
    assert.deepEqual(await refusal('nobody', created.secret), await refusal('new-1', created.secret))
  })
}
