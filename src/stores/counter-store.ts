// Counters in fixed windows: rate limits and failed-attempt locks. Implementations: memory-counter-store.ts,
// redis-counter-store.ts; both pass test/contract/counter-store.spec.ts.

export interface CounterHit {
  /** Hits in the current window, this one included. */
  readonly count: number
  /** Epoch ms when the window ends and the count starts again from zero. */
  readonly resetAt: number
}

export interface CounterStore {
  /** Counts one hit; the window starts with the first hit and lasts windowMs. */
  hit (key: string, windowMs: number): Promise<CounterHit>
  /** The current count (0 when no window is open). */
  peek (key: string): Promise<CounterHit>
  reset (key: string): Promise<void>
}
