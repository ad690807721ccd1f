import { PushlineError } from './errors.ts'

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

export function createRequestGate (opts: RequestGateOptions): RequestGate {
  let inFlight = 0
  const waiting: Array<() => void> = []
  const changed = (): void => opts.onChange?.(inFlight, waiting.length)

  async function acquire (): Promise<void> {
    if (opts.limit === 0 || inFlight < opts.limit) {
      inFlight++
      changed()
      return
    }
    if (waiting.length >= opts.queue) {
      opts.onRefused?.()
      throw new PushlineError('IOT_ERR_BUSY', `too many ${opts.what} in progress on this server, retry later`, { retryAfterSeconds: 1 })
    }
    // The slot is handed over by release(): inFlight stays the same.
    await new Promise<void>((resolve) => { waiting.push(resolve); changed() })
  }

  function release (): void {
    const next = waiting.shift()
    if (next === undefined) inFlight--
    changed()
    next?.()
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
