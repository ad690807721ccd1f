// Counters in fixed windows: rate limits and failed-attempt locks. Implementations: memory-counter-store.ts,
// redis-counter-store.ts; both pass test/contract/counter-store.spec.ts.

export interface CounterHit {
  /** Hits in the current window, this one included. */
  readonly count: number
  /** Epoch ms when the window ends and the count starts again from zero. */
  readonly resetAt: number
}

/** A hit on a counter that has a limit: see CounterStore.hitAndPeek. */
export interface LimitedHit {
  readonly key: string
  readonly windowMs: number
  /** The most hits the window may hold; the hit that goes over it stops the ones after it. */
  readonly limit: number
  /** Hits this one counts for (default 1): a caller that batches its hits sends them at once. */
  readonly by?: number
}

export interface HitAndPeekResult {
  /** One entry per hit counted, in order: all of them, or up to and including the first that went over its limit. */
  readonly hits: readonly CounterHit[]
  /** One entry per peeked key, in order, read after the hits. */
  readonly peeks: readonly CounterHit[]
}

export interface CounterStore {
  /** Counts one hit; the window starts with the first hit and lasts windowMs. */
  hit (key: string, windowMs: number): Promise<CounterHit>
  /** The current count (0 when no window is open). */
  peek (key: string): Promise<CounterHit>
  reset (key: string): Promise<void>
  /**
   * hit() on each of `hits` in order, stopping after the first whose count goes over its limit (the later ones are not
   * counted), then peek() on each of `peeks`: one atomic step (one round trip in Redis), for a request that checks
   * several limits and locks at once.
   */
  hitAndPeek (hits: readonly LimitedHit[], peeks: readonly string[]): Promise<HitAndPeekResult>
}

/**
 * Counts a wrong secret or token in a window of `lockoutMs` from the first; the failure that reaches `maxFailures`
 * opens the lock (a window of its own, the whole lockoutMs from that failure) and starts the count again. Two requests
 * may both reach the limit: the second opens no new window, it only counts in the first one.
 */
export async function countFailure (counters: CounterStore, keys: { readonly failuresKey: string, readonly lockKey: string }, maxFailures: number, lockoutMs: number): Promise<void> {
  const f = await counters.hit(keys.failuresKey, lockoutMs)
  if (f.count < maxFailures) return
  await counters.hit(keys.lockKey, lockoutMs)
  await counters.reset(keys.failuresKey)
}
