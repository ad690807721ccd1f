// Reconnect delays: exponential from `base`, capped at `max`, with "equal jitter" (part fixed, part random)
// so a fleet that lost its node does not come back in lockstep.

export interface BackoffOptions {
  readonly base: number
  readonly max: number
  /** 0: no randomness; 1: anywhere from 0 to the full delay. */
  readonly jitter: number
}

/** Delay before attempt `attempt` (1 = the first retry), ms; `random` is injectable for tests. */
export function backoffDelay (attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(opts.max, opts.base * 2 ** Math.max(0, Math.min(30, attempt - 1)))
  return Math.round(exp * (1 - opts.jitter) + exp * opts.jitter * random())
}

/** An interval around `ms` spread by ±jitter/2, e.g. 1000 ms with jitter 0.2 → 900..1100 ms. */
export function jittered (ms: number, jitter: number, random: () => number = Math.random): number {
  return Math.max(1, ms * (1 + jitter * (random() - 0.5)))
}
