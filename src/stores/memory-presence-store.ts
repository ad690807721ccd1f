import type { PresenceEntry, PresenceStore } from './presence-store.ts'

export function createMemoryPresenceStore (): PresenceStore {
  const entries = new Map<string, PresenceEntry>()
  const byNode = new Map<string, Set<string>>()
  const seen = new Map<string, number>()
  let epoch = 0

  const nodeSet = (nodeId: string): Set<string> => {
    let s = byNode.get(nodeId)
    if (s === undefined) byNode.set(nodeId, s = new Set())
    return s
  }
  const put = (e: PresenceEntry): void => {
    const old = entries.get(e.deviceId)
    if (old !== undefined) byNode.get(old.nodeId)?.delete(e.deviceId)
    entries.set(e.deviceId, e)
    nodeSet(e.nodeId).add(e.deviceId)
  }
  const drop = (deviceId: string, at: number): void => {
    const old = entries.get(deviceId)
    if (old === undefined) return
    entries.delete(deviceId)
    byNode.get(old.nodeId)?.delete(deviceId)
    seen.set(deviceId, at)
  }

  return {
    async connect (deviceId, nodeId, at, origin, connection) {
      const replaced = entries.get(deviceId)
      if (replaced !== undefined && connection !== undefined && replaced.connection === connection) return { result: 'adopted', entry: replaced, replaced: undefined }
      if (replaced !== undefined && replaced.nodeId !== nodeId && replaced.connectedAt > at) return { result: 'superseded', entry: replaced, replaced: undefined }
      const entry: PresenceEntry = { deviceId, nodeId, epoch: ++epoch, connectedAt: at, ...origin, ...(connection !== undefined && { connection }) }
      put(entry)
      seen.delete(deviceId)
      return { result: 'connected', entry, replaced }
    },
    async disconnect (deviceId, nodeId, e, at) {
      const cur = entries.get(deviceId)
      if (cur === undefined || cur.nodeId !== nodeId || cur.epoch !== e) return false
      drop(deviceId, at)
      return true
    },
    async get (deviceId) {
      return entries.get(deviceId)
    },
    async getMany (deviceIds) {
      return deviceIds.map((id) => entries.get(id))
    },
    async lastSeen (deviceId) {
      return seen.get(deviceId)
    },
    async count () {
      return entries.size
    },
    async list ({ after, limit, nodeId }) {
      const ids = [...(nodeId === undefined ? entries.keys() : byNode.get(nodeId) ?? [])]
        .filter((id) => after === undefined || id > after)
        .sort()
      const page = ids.slice(0, limit)
      return { entries: page.map((id) => entries.get(id) as PresenceEntry), next: ids.length > limit ? page.at(-1) : undefined }
    },
    async listNode (nodeId) {
      return [...(byNode.get(nodeId) ?? [])].map((id) => entries.get(id) as PresenceEntry)
    },
    async countNode (nodeId) {
      return byNode.get(nodeId)?.size ?? 0
    },
    async restore (entry) {
      const cur = entries.get(entry.deviceId)
      if (cur !== undefined && cur.epoch === entry.epoch) return { result: 'present', entry: cur }
      if (cur !== undefined && cur.epoch > entry.epoch) return { result: 'superseded', entry: cur }
      const restored = { ...entry, epoch: ++epoch }
      put(restored)
      seen.delete(entry.deviceId)
      return { result: 'restored', entry: restored }
    },
    async staleSince (before, limit) {
      return [...seen.entries()].filter(([, t]) => t < before).sort((x, y) => x[1] - y[1]).slice(0, limit).map(([id]) => id)
    },
    async forgetSeen (deviceId) {
      seen.delete(deviceId)
    },
    async removeNode (nodeId, at) {
      const removed = [...(byNode.get(nodeId) ?? [])].map((id) => entries.get(id) as PresenceEntry)
      for (const e of removed) drop(e.deviceId, at)
      byNode.delete(nodeId)
      return removed
    }
  }
}
