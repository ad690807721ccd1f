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
  const hit = (key: string, windowMs: number, by = 1): CounterHit => {
    if (++hits % 10_000 === 0) sweep()
    let w = live(key)
    if (w === undefined) windows.set(key, w = { count: 0, resetAt: now() + windowMs })
    w.count += by
    return { ...w }
  }
  const peek = (key: string): CounterHit => {
    const w = live(key)
    return w === undefined ? { count: 0, resetAt: now() } : { ...w }
  }
  return {
    async hit (key, windowMs) {
      return hit(key, windowMs)
    },
    async peek (key) {
      return peek(key)
    },
    async reset (key) {
      windows.delete(key)
    },
    async hitAndPeek (limited, peeks) {
      const counted: CounterHit[] = []
      for (const h of limited) {
        const c = hit(h.key, h.windowMs, h.by)
        counted.push(c)
        if (c.count > h.limit) break
      }
      return { hits: counted, peeks: peeks.map(peek) }
    }
  }
}
