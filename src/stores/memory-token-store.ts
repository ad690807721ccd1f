import type { TokenRecord, TokenStore } from './token-store.ts'

export function createMemoryTokenStore (): TokenStore {
  const tokens = new Map<string, TokenRecord>()
  const byDevice = new Map<string, Set<string>>()

  function forget (hash: string): void {
    const rec = tokens.get(hash)
    if (rec === undefined) return
    tokens.delete(hash)
    const set = byDevice.get(rec.deviceId)
    set?.delete(hash)
    if (set?.size === 0) byDevice.delete(rec.deviceId)
  }

  return {
    async put (hash, record) {
      tokens.set(hash, structuredClone(record))
      let set = byDevice.get(record.deviceId)
      if (set === undefined) byDevice.set(record.deviceId, set = new Set())
      set.add(hash)
    },
    async get (hash, now) {
      const rec = tokens.get(hash)
      if (rec === undefined) return undefined
      // Like Redis key expiry, the wall clock also expires tokens, whatever clock the caller passes.
      if (rec.expiresAt <= Math.max(now, Date.now())) {
        forget(hash)
        return undefined
      }
      return structuredClone(rec)
    },
    async take (hash, deviceId, now) {
      const rec = tokens.get(hash)
      if (rec === undefined || rec.deviceId !== deviceId) return undefined
      forget(hash)
      return rec.expiresAt <= Math.max(now, Date.now()) ? undefined : rec
    },
    async delete (hash) {
      forget(hash)
    },
    async revokeDevice (deviceId) {
      const set = byDevice.get(deviceId)
      if (set === undefined) return 0
      const n = set.size
      for (const h of [...set]) forget(h)
      return n
    }
  }
}
