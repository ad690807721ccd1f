import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pushJobStoreSpec } from '../contract/push-job-store.spec.ts'
import { createRedisPushJobStore } from '../../src/stores/redis-push-job-store.ts'
import { historyStoreSpec } from '../contract/history-store.spec.ts'
import { receiptStoreSpec } from '../contract/receipt-store.spec.ts'
import { createRedisHistoryStore } from '../../src/stores/redis-history-store.ts'
import { createRedisReceiptStore } from '../../src/stores/redis-receipt-store.ts'
import { createRedisDeviceStore } from '../../src/stores/redis-device-store.ts'
import { createRedisTokenStore } from '../../src/stores/redis-token-store.ts'
import { deviceStoreSpec } from '../contract/device-store.spec.ts'
import { tokenStoreSpec } from '../contract/token-store.spec.ts'
import { nodeRegistrySpec } from '../contract/node-registry.spec.ts'
import { createRedisNodeRegistry } from '../../src/stores/redis-node-registry.ts'
import { presenceStoreSpec } from '../contract/presence-store.spec.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'
import { broadcastStoreSpec } from '../contract/broadcast-store.spec.ts'
import { createRedisBroadcastStore } from '../../src/stores/redis-broadcast-store.ts'
import { counterStoreSpec } from '../contract/counter-store.spec.ts'
import { createRedisCounterStore } from '../../src/stores/redis-counter-store.ts'
import { secretExchangeStoreSpec } from '../contract/secret-exchange-store.spec.ts'
import { createRedisSecretExchangeStore } from '../../src/stores/redis-secret-exchange-store.ts'
import { connectRedis, uniquePrefix } from '../helpers/services.ts'

deviceStoreSpec('redis device store', async (t) => createRedisDeviceStore({ redis: connectRedis(t), prefix: uniquePrefix() }))
tokenStoreSpec('redis token store', async (t) => createRedisTokenStore({ redis: connectRedis(t), prefix: uniquePrefix() }))
counterStoreSpec('redis counter store', async (t) => createRedisCounterStore({ redis: connectRedis(t), prefix: uniquePrefix() }))
presenceStoreSpec('redis presence store', async (t) => createRedisPresenceStore({ redis: connectRedis(t), prefix: uniquePrefix() }))
nodeRegistrySpec('redis node registry', async (t) => createRedisNodeRegistry({ redis: connectRedis(t), prefix: uniquePrefix() }))
historyStoreSpec('redis history store', async (t, limits) => createRedisHistoryStore({ redis: connectRedis(t), prefix: uniquePrefix(), limits }))
receiptStoreSpec('redis receipt store', async (t) => createRedisReceiptStore({ redis: connectRedis(t), prefix: uniquePrefix() }))
broadcastStoreSpec('redis broadcast store', async (t, clock) => createRedisBroadcastStore({ redis: connectRedis(t), prefix: uniquePrefix(), now: clock.now }))
secretExchangeStoreSpec('redis secret exchange store', async (t) => {
  const redis = connectRedis(t)
  const prefix = uniquePrefix()
  return {
    exchanges: createRedisSecretExchangeStore({ redis, prefix }),
    counters: createRedisCounterStore({ redis, prefix }),
    devices: createRedisDeviceStore({ redis, prefix }),
    tokens: createRedisTokenStore({ redis, prefix })
  }
})
pushJobStoreSpec('redis push job store', async (t) => {
  const redis = connectRedis(t)
  const prefix = uniquePrefix()
  const limits = { maxMessages: 100, maxAgeMs: 3600_000 }
  return { jobs: createRedisPushJobStore({ redis, prefix, limits }), history: createRedisHistoryStore({ redis, prefix, limits }), receipts: createRedisReceiptStore({ redis, prefix }), devices: createRedisDeviceStore({ redis, prefix }) }
})

test('scripts run by SHA load themselves again after Redis forgot them (SCRIPT FLUSH, as after a restart)', { timeout: 120_000 }, async (t) => {
  const redis = connectRedis(t)
  const presence = createRedisPresenceStore({ redis, prefix: uniquePrefix() })
  const first = await presence.connect('flushed', 'n1', 1000)
  await redis.script('FLUSH')
  const second = await presence.connect('flushed', 'n1', 2000)
  assert.ok(second.entry.epoch > first.entry.epoch)
  assert.deepEqual(second.replaced, first.entry)
  assert.equal(await presence.disconnect('flushed', 'n1', second.entry.epoch, 3000), true)
})

test('a node index that online-nodes does not name (written by an older node) is listed and counted again once its node counts it', { timeout: 60_000 }, async (t) => {
  const redis = connectRedis(t)
  const prefix = uniquePrefix()
  const presence = createRedisPresenceStore({ redis, prefix })
  await presence.connect('old-a', 'old-node', 1)
  await presence.connect('new-b', 'new-node', 2)
  await redis.srem(`${prefix}online-nodes`, 'old-node')
  assert.equal(await presence.count(), 1, 'only the indexes online-nodes names')
  assert.equal(await presence.countNode('old-node'), 1)
  assert.equal(await presence.count(), 2)
  assert.deepEqual((await presence.list({ limit: 10 })).entries.map((e) => e.deviceId), ['new-b', 'old-a'])
  // A node whose index emptied leaves the set at the next count.
  const { entry } = await presence.connect('old-a', 'new-node', 3)
  assert.equal(entry.nodeId, 'new-node')
  assert.equal(await presence.count(), 2)
  assert.deepEqual((await redis.smembers(`${prefix}online-nodes`)).sort(), ['new-node'])
})
