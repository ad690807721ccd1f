import { pushJobStoreSpec } from '../contract/push-job-store.spec.ts'
import { createMemoryPushJobStore } from '../../src/stores/memory-push-job-store.ts'
import { historyStoreSpec } from '../contract/history-store.spec.ts'
import { receiptStoreSpec } from '../contract/receipt-store.spec.ts'
import { createMemoryHistoryStore } from '../../src/stores/memory-history-store.ts'
import { createMemoryReceiptStore } from '../../src/stores/memory-receipt-store.ts'
import { createMemoryDeviceStore } from '../../src/stores/memory-device-store.ts'
import { createMemoryTokenStore } from '../../src/stores/memory-token-store.ts'
import { deviceStoreSpec } from '../contract/device-store.spec.ts'
import { tokenStoreSpec } from '../contract/token-store.spec.ts'
import { nodeRegistrySpec } from '../contract/node-registry.spec.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import { presenceStoreSpec } from '../contract/presence-store.spec.ts'
import { createMemoryPresenceStore } from '../../src/stores/memory-presence-store.ts'
import { broadcastStoreSpec } from '../contract/broadcast-store.spec.ts'
import { createMemoryBroadcastStore } from '../../src/stores/memory-broadcast-store.ts'
import { counterStoreSpec } from '../contract/counter-store.spec.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { secretExchangeStoreSpec } from '../contract/secret-exchange-store.spec.ts'
import { createMemorySecretExchangeStore } from '../../src/stores/memory-secret-exchange-store.ts'

deviceStoreSpec('memory device store', async () => createMemoryDeviceStore())
tokenStoreSpec('memory token store', async () => createMemoryTokenStore())
counterStoreSpec('memory counter store', async () => createMemoryCounterStore())
presenceStoreSpec('memory presence store', async () => createMemoryPresenceStore())
nodeRegistrySpec('memory node registry', async (_t, clock) => createMemoryNodeRegistry(clock.now))
historyStoreSpec('memory history store', async (_t, limits) => createMemoryHistoryStore(limits))
receiptStoreSpec('memory receipt store', async () => createMemoryReceiptStore())
broadcastStoreSpec('memory broadcast store', async (_t, clock) => createMemoryBroadcastStore(clock.now))
secretExchangeStoreSpec('memory secret exchange store', async () => {
  const stores = { counters: createMemoryCounterStore(), devices: createMemoryDeviceStore(), tokens: createMemoryTokenStore() }
  return { ...stores, exchanges: createMemorySecretExchangeStore(stores) }
})
pushJobStoreSpec('memory push job store', async () => {
  const history = createMemoryHistoryStore({ maxMessages: 100, maxAgeMs: 3600_000 })
  const receipts = createMemoryReceiptStore()
  const devices = createMemoryDeviceStore()
  return { jobs: createMemoryPushJobStore({ devices, history, receipts }), history, receipts, devices }
})
