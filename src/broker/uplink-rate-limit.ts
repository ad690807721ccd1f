// Per-connection uplink rate limit that slows a device down instead of dropping its uplinks: a token bucket
// whose deficit becomes a delay. While an uplink waits, aedes holds that device's PUBACK and does not read the
// rest of its socket (it reads the next chunk only when every packet of the current one is done).

export interface UplinkRateLimit {
  readonly perSecond: number
  readonly burst: number
}

export interface RateGate {
  /**
   * Runs `go` once the connection may send one more uplink: at once while the bucket has a token, else after
   * the wait the deficit asks for. Calls run in the order they were made. Returns true when `go` was delayed.
   */
  pass (go: () => void): boolean
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One gate per connection. `now` is injectable for tests. */
export function createRateGate (limit: UplinkRateLimit, now: () => number = Date.now): RateGate {
  const perMs = limit.perSecond / 1000
  let tokens = limit.burst
  let last = now()
  /** The delayed calls, chained so that they run in order. */
  let queue: Promise<void> | undefined
  let queued = 0

  return {
    pass (go) {
      const t = now()
      tokens = Math.min(limit.burst, tokens + (t - last) * perMs)
      last = t
      tokens -= 1
      // Tokens may go below zero: each later call then waits one interval more than the one before it.
      const waitMs = tokens >= 0 ? 0 : -tokens / perMs
      if (waitMs === 0 && queued === 0) {
        go()
        return false
      }
      const until = t + waitMs
      queued++
      const run = (): Promise<void> => sleep(Math.max(0, until - now())).then(() => {
        queued--
        if (queued === 0) queue = undefined
        try {
          go()
        } catch {
          // go reports its own failures; the calls behind it must still run
        }
      })
      queue = queue === undefined ? run() : queue.then(run)
      return true
    }
  }
}
