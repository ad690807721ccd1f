import type { CounterHit, CounterStore } from './counter-store.ts'

export function createMemoryCounterStore (now: () => number = Date.now): CounterStore {
  const windows = new Map<string, { count: number, resetAt: number }>()
  const live = (key: string): { count: number, resetAt: number } | undefined => {
    const w = windows.get(key)
    if (w !== undefined && w.resetAt <= now()) {
      windows.delete(key)
      return undefined
    }
    return w
  }
  // Expired windows are dropped as they are touched; a sweep keeps keys that are never touched again from piling up.
  let hits = 0
  const sweep = (): void => {
    const t = now()
    for (const [k, w] of windows) if (w.resetAt <= t) windows.delete(k)
  }
  return {
    async hit (key, windowMs): Promise<CounterHit> {
      if (++hits % 10_000 === 0) sweep()
      let w = live(key)
      if (w === undefined) windows.set(key, w = { count: 0, resetAt: now() + windowMs })
      w.count++
      return { ...w }
    },
    async peek (key) {
      const w = live(key)
      return w === undefined ? { count: 0, resetAt: now() } : { ...w }
    },
    async reset (key) {
      windows.delete(key)
    }
  }
}
