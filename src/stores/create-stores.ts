import type { Redis } from 'ioredis'
import type { BroadcastStore } from './broadcast-store.ts'
import type { CounterStore } from './counter-store.ts'
import type { DeviceStore } from './device-store.ts'
import type { HistoryLimits, HistoryStore } from './history-store.ts'
import { createMemoryBroadcastStore } from './memory-broadcast-store.ts'
import { createMemoryCounterStore } from './memory-counter-store.ts'
import { createMemoryDeviceStore } from './memory-device-store.ts'
import { createMemoryHistoryStore } from './memory-history-store.ts'
import { createMemoryNodeRegistry } from './memory-node-registry.ts'
import { createMemoryPresenceStore } from './memory-presence-store.ts'
import { createMemoryPushJobStore } from './memory-push-job-store.ts'
import { createMemoryReceiptStore } from './memory-receipt-store.ts'
import { createMemoryTokenStore } from './memory-token-store.ts'
import type { NodeRegistry } from './node-registry.ts'
import type { PresenceStore } from './presence-store.ts'
import type { PushJobStore } from './push-job-store.ts'
import type { ReceiptStore } from './receipt-store.ts'
import { createRedisBroadcastStore } from './redis-broadcast-store.ts'
import { createRedisCounterStore } from './redis-counter-store.ts'
import { createRedisDeviceStore } from './redis-device-store.ts'
import { createRedisHistoryStore } from './redis-history-store.ts'
import { createRedisNodeRegistry } from './redis-node-registry.ts'
import { createRedisPresenceStore } from './redis-presence-store.ts'
import { createRedisPushJobStore } from './redis-push-job-store.ts'
import { createRedisReceiptStore } from './redis-receipt-store.ts'
import { createRedisTokenStore } from './redis-token-store.ts'
import { createRedisSecretExchangeStore } from './redis-secret-exchange-store.ts'
import { createMemorySecretExchangeStore } from './memory-secret-exchange-store.ts'
import type { SecretExchangeStore } from './secret-exchange-store.ts'
import type { TokenStore } from './token-store.ts'

// Every store of one process, all in memory (embedded mode) or all on one Redis connection (cluster mode).

export interface Stores {
  readonly devices: DeviceStore
  readonly tokens: TokenStore
  readonly counters: CounterStore
  /** A token for a device secret in one step, on the data of devices, tokens and counters. */
  readonly exchanges: SecretExchangeStore
  readonly nodes: NodeRegistry
  readonly presence: PresenceStore
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  readonly broadcasts: BroadcastStore
  readonly jobs: PushJobStore
}

export interface StoresOptions {
  /** Undefined: memory stores. */
  readonly redis: Redis | undefined
  readonly prefix: string
  readonly historyLimits: HistoryLimits
  /**
   * Wraps the receipt store before anything uses it (counting transitions for metrics). The memory job store
   * opens its receipts through the wrapped store, so a chunk's receipts are counted like any other.
   */
  readonly wrapReceipts?: (store: ReceiptStore) => ReceiptStore
}

export function createStores (opts: StoresOptions): Stores {
  const { redis, prefix, historyLimits: limits } = opts
  const wrap = opts.wrapReceipts ?? ((store: ReceiptStore) => store)
  if (redis === undefined) {
    const devices = createMemoryDeviceStore()
    const tokens = createMemoryTokenStore()
    const counters = createMemoryCounterStore()
    const history = createMemoryHistoryStore(limits)
    const receipts = wrap(createMemoryReceiptStore())
    return {
      devices,
      tokens,
      counters,
      exchanges: createMemorySecretExchangeStore({ counters, devices, tokens }),
      nodes: createMemoryNodeRegistry(),
      presence: createMemoryPresenceStore(),
      history,
      receipts,
      broadcasts: createMemoryBroadcastStore(),
      jobs: createMemoryPushJobStore({ devices, history, receipts })
    }
  }
  return {
    devices: createRedisDeviceStore({ redis, prefix }),
    tokens: createRedisTokenStore({ redis, prefix }),
    counters: createRedisCounterStore({ redis, prefix }),
    exchanges: createRedisSecretExchangeStore({ redis, prefix }),
    nodes: createRedisNodeRegistry({ redis, prefix }),
    presence: createRedisPresenceStore({ redis, prefix }),
    history: createRedisHistoryStore({ redis, prefix, limits }),
    receipts: wrap(createRedisReceiptStore({ redis, prefix })),
    broadcasts: createRedisBroadcastStore({ redis, prefix }),
    jobs: createRedisPushJobStore({ redis, prefix, limits })
  }
}
