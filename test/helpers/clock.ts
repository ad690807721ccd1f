// A clock a test moves by hand, injected into stores whose leases and ttls it checks: time passes only when the
// test says so, however busy the machine is.

export interface ManualClock {
  readonly now: () => number
  advance (ms: number): void
}

export function manualClock (start = Date.now()): ManualClock {
  let at = start
  return {
    now: () => at,
    advance (ms) { at += ms }
  }
}
