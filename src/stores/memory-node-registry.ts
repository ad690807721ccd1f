import type { NodeRecord, NodeRegistry } from './node-registry.ts'

export function createMemoryNodeRegistry (now: () => number = Date.now): NodeRegistry {
  const records = new Map<string, { record: NodeRecord, expiresAt: number }>()
  const drains = new Set<string>()
  const live = (): NodeRecord[] => [...records.values()].filter((r) => r.expiresAt > now()).map((r) => r.record)
  return {
    async heartbeat (record, ttlMs) {
      const before = records.get(record.nodeId)
      records.set(record.nodeId, { record: { ...record }, expiresAt: now() + ttlMs })
      return before !== undefined && before.expiresAt > now()
    },
    async list () {
      return live().sort((a, b) => a.nodeId.localeCompare(b.nodeId))
    },
    async get (nodeId) {
      const r = records.get(nodeId)
      return r !== undefined && r.expiresAt > now() ? r.record : undefined
    },
    async dead () {
      return [...records.entries()].filter(([, r]) => r.expiresAt <= now()).map(([id]) => id)
    },
    async forget (nodeId) {
      records.delete(nodeId)
      drains.delete(nodeId)
    },
    async forgetDead (nodeId) {
      const r = records.get(nodeId)
      if (r === undefined || r.expiresAt > now()) return false
      return records.delete(nodeId)
    },
    async setDrain (nodeId, draining) {
      if (draining) drains.add(nodeId)
      else drains.delete(nodeId)
    },
    async drainRequested (nodeId) {
      return drains.has(nodeId)
    }
  }
}
