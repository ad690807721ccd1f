import type { BroadcastStore, LiveBroadcast } from './broadcast-store.ts'

export function createMemoryBroadcastStore (now: () => number = Date.now): BroadcastStore {
  const byId = new Map<string, LiveBroadcast>()
  const trimmed = (at: number): LiveBroadcast[] => {
    // Trimmed by the clock, read as at `at`.
    const clock = now()
    for (const [id, b] of byId) if (b.expiresAt <= clock) byId.delete(id)
    return [...byId.values()].filter((b) => b.expiresAt > at).sort((a, b) => a.expiresAt - b.expiresAt)
  }
  return {
    async add (broadcast) {
      if (broadcast.expiresAt > now()) byId.set(broadcast.pushId, broadcast)
    },
    async liveOn (topic, at) {
      return trimmed(at).filter((b) => b.topic === topic)
    },
    async live (at) {
      return trimmed(at)
    }
  }
}
