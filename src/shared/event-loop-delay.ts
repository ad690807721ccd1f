// How long the event loop was held between two readings. A process that cannot run its callbacks for longer than
// Redis's command timeout, or a heartbeat's TTL, sees its commands time out and its record expire although Redis
// answered at once: the reading tells such a stall apart from a slow Redis (docs/cluster.md, Membership).
// Not perf_hooks.monitorEventLoopDelay: on Node 20 it left out stalls of 300 and 700 ms that a timer saw.

export interface EventLoopDelay {
  /** The longest delay of one loop turn since the previous reading (or the start), in milliseconds; starts a new window. */
  take (): number
  stop (): void
}

/** Samples with a timer every `resolutionMs`: a turn that held the loop delays the next sample by its length. */
export function watchEventLoopDelay (resolutionMs = 20): EventLoopDelay {
  let last = performance.now()
  let maxMs = 0
  const timer = setInterval(() => {
    const now = performance.now()
    maxMs = Math.max(maxMs, now - last - resolutionMs)
    last = now
  }, resolutionMs)
  timer.unref()
  return {
    take () {
      // The turn in progress counts too: a reading taken at the end of a long turn includes it.
      const reading = Math.round(Math.max(maxMs, performance.now() - last - resolutionMs, 0))
      maxMs = 0
      return reading
    },
    stop () { clearInterval(timer) }
  }
}
