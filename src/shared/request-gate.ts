import { PushlineError } from './errors.ts'
import { createTokenBucket } from './token-bucket.ts'

// A bound on the requests of one kind that one process works on at once: token requests (on an all-in-one process
// they share the event loop with the MQTT broker, docs/onboarding.md, "Token requests in flight") and the
// authentication of MQTT connects (a reconnect storm, docs/limits.md, "Connects being authenticated"). Requests over
// the bound wait in a FIFO queue of bounded length; beyond that they are refused at once with IOT_ERR_BUSY, before
// any Redis command, so a refused request changes no counter and costs Redis nothing.

export interface RequestGateOptions {
  /** What the gate bounds, plural, for the refusal's message: "token requests", "connects being authenticated". */
  readonly what: string
  /** Requests worked on at once; 0: no bound (the gate only counts). */
  readonly limit: number
  /** Requests that may wait for a slot; beyond them, IOT_ERR_BUSY. */
  readonly queue: number
  /**
   * Requests started per second, evened out over 10 ms steps; 0 or absent: no pace. Requests over the pace wait in
   * the same queue as those waiting for a slot.
   */
  readonly perSecond?: number
  /** The clock of the pace (ms). */
  readonly now?: () => number
  /** Told after every change, for the gauges. */
  readonly onChange?: (inFlight: number, queued: number) => void
  /** Told of each refusal. */
  readonly onRefused?: () => void
}

export interface RequestGate {
  /** Runs `work` when a slot is free (at once, or after waiting in the queue); throws IOT_ERR_BUSY when the queue is full. */
  run<T> (work: () => Promise<T>): Promise<T>
  readonly inFlight: number
  readonly queued: number
}

/** The pace's step: requests may start in bursts of one step's share, so a pace needs no timer per request. */
const STEP_MS = 10

export function createRequestGate (opts: RequestGateOptions): RequestGate {
  let inFlight = 0
  const waiting: Array<() => void> = []
  const changed = (): void => opts.onChange?.(inFlight, waiting.length)
  const perSecond = opts.perSecond ?? 0
  // Refilled at perSecond, holding at most one step's share (at least one start).
  const pace = perSecond > 0 ? createTokenBucket(perSecond, Math.max(1, perSecond * STEP_MS / 1000), opts.now) : undefined
  let timer: NodeJS.Timeout | undefined

  const slotFree = (): boolean => opts.limit === 0 || inFlight < opts.limit
  /** Takes one start from the pace; false when the pace allows none yet. */
  const paced = (): boolean => pace?.take() ?? true

  /** Starts waiting requests, oldest first, while slots and the pace allow; wakes itself when only the pace stops it. */
  function admitWaiting (): void {
    while (waiting.length > 0 && slotFree()) {
      if (!paced()) {
        // Less than one start was left: one more is there after 1/perSecond.
        timer ??= setTimeout(() => { timer = undefined; admitWaiting() }, Math.ceil(1000 / perSecond))
        break
      }
      inFlight++
      ;(waiting.shift() as () => void)()
    }
    changed()
  }

  async function acquire (): Promise<void> {
    if (waiting.length === 0 && slotFree() && paced()) {
      inFlight++
      changed()
      return
    }
    if (waiting.length >= opts.queue) {
      opts.onRefused?.()
      throw new PushlineError('IOT_ERR_BUSY', `too many ${opts.what} in progress on this server, retry later`, { retryAfterSeconds: 1 })
    }
    // Started by admitWaiting(), which counts it in inFlight.
    await new Promise<void>((resolve) => { waiting.push(resolve); admitWaiting() })
  }

  function release (): void {
    inFlight--
    admitWaiting()
  }

  return {
    async run (work) {
      await acquire()
      try {
        return await work()
      } finally {
        release()
      }
    },
    get inFlight () { return inFlight },
    get queued () { return waiting.length }
  }
}
