import { matchesAnyKey } from '../auth/constant-time.ts'
import { isLegacySecretHash, unknownDeviceSecretHash } from '../auth/secret-hash.ts'
import { countFailure, type CounterStore } from './counter-store.ts'
import type { DeviceStore } from './device-store.ts'
import type { SecretExchangeStore } from './secret-exchange-store.ts'
import type { TokenStore } from './token-store.ts'

/**
 * The exchange as calls on the three stores one after another: for the memory stores of one process (embedded mode),
 * where each call is a step of the same event loop.
 */
export function createMemorySecretExchangeStore (stores: { counters: CounterStore, devices: DeviceStore, tokens: TokenStore }): SecretExchangeStore {
  const { counters, devices, tokens } = stores
  return {
    async exchange (r) {
      const { hits, peeks } = await counters.hitAndPeek(r.hits, [r.lockKey, r.failuresKey])
      const [lock, failures] = peeks as [typeof peeks[0], typeof peeks[0]]
      const over = hits.length < r.hits.length || hits.some((h, i) => h.count > (r.hits[i]?.limit ?? Infinity))
      if (over || lock.count > 0) return { status: 'refused', hits, lock }
      const device = await devices.get(r.deviceId)
      if (device !== undefined && isLegacySecretHash(device.secretHash)) return { status: 'legacy', device, failures: failures.count }
      // An unknown id is compared with a record no secret matches, so both cost the same.
      if (!matchesAnyKey(r.secretHash, [device?.secretHash ?? unknownDeviceSecretHash()]) || device === undefined) {
        await countFailure(counters, r, r.maxFailures, r.lockoutMs)
        return { status: 'bad-credentials' }
      }
      if (!device.enabled) return { status: 'disabled' }
      if (failures.count > 0) await counters.reset(r.failuresKey)
      await tokens.put(r.tokenHash, { deviceId: device.id, expiresAt: r.expiresAt, groups: device.groups })
      return { status: 'issued' }
    }
  }
}
