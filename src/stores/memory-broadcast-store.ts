import type { BroadcastStore, LiveBroadcast } from './broadcast-store.ts'

export function createMemoryBroadcastStore (now: () => number = Date.now): BroadcastStore {
  const byId = new Map<string, LiveBroadcast>()
  /** Drops what the clock says has expired (as the Redis store trims its indexes). */
  const trim = (): void => {
    const clock = now()
    for (const [id, b] of byId) if (b.expiresAt <= clock) byId.delete(id)
  }
  const read = (at: number): LiveBroadcast[] => {
    trim()
    return [...byId.values()].filter((b) => b.expiresAt > at).sort((a, b) => a.expiresAt - b.expiresAt)
  }
  return {
    async add (broadcast) {
      trim()
      if (broadcast.expiresAt > now()) byId.set(broadcast.pushId, broadcast)
    },
    async liveOn (topic, at) {
      return read(at).filter((b) => b.topic === topic)
    },
    async live (at) {
      return read(at)
    },
    async countLive (at) {
      return read(at).length
    }
  }
}
