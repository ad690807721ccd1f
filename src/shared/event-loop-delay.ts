import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

// How long the event loop was held between two readings. A process that cannot run its callbacks for longer than
// Redis's command timeout sees its commands time out although Redis answered them: the reading tells such a stall
// apart from a slow Redis (docs/cluster.md, Membership).

export interface EventLoopDelayReading {
  /** The longest delay of one loop turn since the previous reading, in milliseconds. */
  readonly maxMs: number
  readonly p99Ms: number
}

export interface EventLoopDelay {
  /** The delays since the previous reading (or the start); starts a new window. */
  take (): EventLoopDelayReading
  stop (): void
}

export function watchEventLoopDelay (resolutionMs = 20): EventLoopDelay {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: resolutionMs })
  histogram.enable()
  return {
    take () {
      // An empty window (no sample yet) reads as max 0, not the histogram's sentinel.
      const reading = histogram.count === 0
        ? { maxMs: 0, p99Ms: 0 }
        : { maxMs: Math.round(histogram.max / 1e6), p99Ms: Math.round(histogram.percentile(99) / 1e6) }
      histogram.reset()
      return reading
    },
    stop () { histogram.disable() }
  }
}
