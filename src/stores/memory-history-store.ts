import type { HistoryEntry, HistoryLimits, HistoryStore } from './history-store.ts'

interface DeviceHistory {
  seq: number
  delivered: number
  /** Ascending by id. */
  entries: HistoryEntry[]
}

export function createMemoryHistoryStore (limits: HistoryLimits, now: () => number = Date.now): HistoryStore {
  const devices = new Map<string, DeviceHistory>()
  const of = (deviceId: string): DeviceHistory => {
    let h = devices.get(deviceId)
    if (h === undefined) devices.set(deviceId, h = { seq: 0, delivered: 0, entries: [] })
    return h
  }
  const trim = (h: DeviceHistory, at: number): void => {
    const cutoff = at - limits.maxAgeMs
    let drop = Math.max(0, h.entries.length - limits.maxMessages)
    while (drop < h.entries.length && (h.entries[drop] as HistoryEntry).sentAt < cutoff) drop++
    if (drop > 0) h.entries.splice(0, drop)
  }
  const store: HistoryStore = {
    async append (deviceId, entry) {
      const h = of(deviceId)
      const stored: HistoryEntry = { ...entry, id: ++h.seq }
      h.entries.push(stored)
      trim(h, now())
      return stored
    },
    async range (deviceId, range, at = now()) {
      const h = devices.get(deviceId)
      if (h === undefined) return []
      const cutoff = at - limits.maxAgeMs
      return h.entries
        .filter((e) => e.id > (range.after ?? 0) && (range.before === undefined || e.id < range.before) && e.sentAt >= cutoff)
        .slice(0, range.limit)
    },
    async get (deviceId, id) {
      return devices.get(deviceId)?.entries.find((e) => e.id === id)
    },
    async markDelivered (deviceId, id) {
      const h = of(deviceId)
      h.delivered = Math.max(h.delivered, id)
    },
    async delivered (deviceId) {
      return devices.get(deviceId)?.delivered ?? 0
    },
    async undelivered (deviceId, belowMark, limit) {
      const mark = await store.delivered(deviceId)
      return await store.range(deviceId, { after: Math.max(0, mark - belowMark), limit })
    },
    async clear (deviceId) {
      devices.delete(deviceId)
    }
  }
  return store
}
