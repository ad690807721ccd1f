import { PushlineError } from './errors.ts'

// A bound on the requests of one kind that one process works on at once: token requests (on an all-in-one process
// they share the event loop with the MQTT broker, docs/onboarding.md, "Token requests in flight") and the
// authentication of MQTT connects (a reconnect storm, docs/limits.md, "Connects being authenticated"). Requests over
// the bound wait in a FIFO queue; a request is refused with IOT_ERR_BUSY before its work starts, so a refused request
// changes no counter and costs Redis nothing: at once when the queue is full, or once it has waited `maxWaitMs` (its
// client would soon give up on the answer, and then it would cost its work for nobody). A request whose client went
// away while it waited (its signal aborted) leaves the queue without its work.

/** Why the gate refused a request: its queue was full, or the request waited in it for `maxWaitMs`. */
export type GateRefusal = 'queue_full' | 'waited_too_long'

export interface RequestGateOptions {
  /** What the gate bounds, plural, for the refusal's message: "token requests", "connects being authenticated". */
  readonly what: string
  /** Requests worked on at once; 0: no bound (the gate only counts). */
  readonly limit: number
  /** Requests that may wait for a slot; beyond them, IOT_ERR_BUSY. */
  readonly queue: number
  /** Longest wait for a slot, in ms; past it, IOT_ERR_BUSY. 0 or absent: no bound. */
  readonly maxWaitMs?: number
  /** Told after every change, for the gauges. */
  readonly onChange?: (inFlight: number, queued: number) => void
  /** Told of each refusal, with its reason. */
  readonly onRefused?: (why: GateRefusal) => void
  /** Told of each request dropped because its signal aborted before its work started. */
  readonly onAbandoned?: () => void
}

export interface RequestGate {
  /**
   * Runs `work` when a slot is free (at once, or after waiting in the queue); throws IOT_ERR_BUSY, with `reason` a
   * GateRefusal in its details, when the queue is full or the wait was too long. When `abandoned` aborts before
   * `work` has started, `work` never runs and the call throws the signal's reason (as Node's own APIs do).
   */
  run<T> (work: () => Promise<T>, abandoned?: AbortSignal): Promise<T>
  /** True when a request run now would wait in the queue or be refused: only such a request needs a signal. */
  readonly full: boolean
  readonly inFlight: number
  /** Requests waiting for a slot (abandoned ones not counted). */
  readonly queued: number
}

interface Waiter {
  /** performance.now() past which the request is refused. */
  readonly deadline: number
  readonly admit: () => void
  readonly refuse: (err: unknown) => void
  /** Left the queue (abandoned): skipped when it comes to the front. */
  gone: boolean
}

/** A FIFO of waiters with O(1) removal at the front; abandoned ones stay in place, marked, until compaction. */
interface WaiterQueue {
  readonly items: Waiter[]
  head: number
  /** Waiters not marked gone. */
  live: number
}

function frontOf (q: WaiterQueue): Waiter | undefined {
  while (q.head < q.items.length) {
    const w = q.items[q.head] as Waiter
    if (!w.gone) return w
    q.head++
  }
  return undefined
}

function shiftFront (q: WaiterQueue): Waiter | undefined {
  const w = frontOf(q)
  if (w === undefined) {
    q.items.length = 0
    q.head = 0
    return undefined
  }
  q.head++
  q.live--
  // Array.prototype.shift is O(n) on large arrays: the front is an index, and the array is cut once half is spent.
  if (q.head > 1024 && q.head * 2 > q.items.length) {
    q.items.splice(0, q.head)
    q.head = 0
  }
  return w
}

/** Marks a waiter gone; the array is compacted once the gone ones outnumber the live ones. */
function dropWaiter (q: WaiterQueue, w: Waiter): void {
  w.gone = true
  q.live--
  const length = q.items.length - q.head
  if (length > 1024 && length > 2 * q.live) {
    const kept = q.items.slice(q.head).filter((x) => !x.gone)
    q.items.length = 0
    q.items.push(...kept)
    q.head = 0
  }
}

export function createRequestGate (opts: RequestGateOptions): RequestGate {
  let inFlight = 0
  const q: WaiterQueue = { items: [], head: 0, live: 0 }
  const maxWaitMs = opts.maxWaitMs ?? 0
  // One timer for the whole queue: every waiter waits equally long, so they expire in queue order, front first.
  let expiry: NodeJS.Timeout | undefined
  const changed = (): void => opts.onChange?.(inFlight, q.live)

  const busy = (why: GateRefusal): PushlineError => {
    opts.onRefused?.(why)
    const message = why === 'queue_full'
      ? `too many ${opts.what} in progress on this server, retry later`
      : `waited ${maxWaitMs} ms for a slot among the ${opts.what} in progress on this server, retry later`
    return new PushlineError('IOT_ERR_BUSY', message, { retryAfterSeconds: 1, reason: why })
  }

  function expire (): void {
    expiry = undefined
    const now = performance.now()
    let front = frontOf(q)
    let refused = false
    while (front !== undefined && front.deadline <= now) {
      shiftFront(q)
      front.refuse(busy('waited_too_long'))
      refused = true
      front = frontOf(q)
    }
    if (refused) changed()
    if (front !== undefined) arm(front.deadline - now)
  }

  function arm (inMs: number): void {
    if (expiry !== undefined) return
    expiry = setTimeout(expire, Math.max(1, Math.ceil(inMs)))
    // A process with nothing else to do does not stay up for a queue.
    expiry.unref()
  }

  async function acquire (abandoned: AbortSignal | undefined): Promise<void> {
    if (abandoned?.aborted === true) {
      opts.onAbandoned?.()
      throw abandoned.reason
    }
    if (opts.limit === 0 || inFlight < opts.limit) {
      inFlight++
      changed()
      return
    }
    if (q.live >= opts.queue) throw busy('queue_full')
    // The slot is handed over by release(): inFlight stays the same.
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        if (w.gone) return
        dropWaiter(q, w)
        changed()
        opts.onAbandoned?.()
        reject(abandoned?.reason)
      }
      const settled = (): void => abandoned?.removeEventListener('abort', onAbort)
      const w: Waiter = {
        deadline: maxWaitMs > 0 ? performance.now() + maxWaitMs : Number.POSITIVE_INFINITY,
        admit: () => { settled(); resolve() },
        refuse: (err) => { settled(); reject(err) },
        gone: false
      }
      abandoned?.addEventListener('abort', onAbort, { once: true })
      q.items.push(w)
      q.live++
      if (maxWaitMs > 0) arm(maxWaitMs)
      changed()
    })
  }

  function release (): void {
    const next = shiftFront(q)
    if (next === undefined) inFlight--
    changed()
    next?.admit()
  }

  return {
    async run (work, abandoned) {
      await acquire(abandoned)
      try {
        return await work()
      } finally {
        release()
      }
    },
    get full () { return opts.limit !== 0 && inFlight >= opts.limit },
    get inFlight () { return inFlight },
    get queued () { return q.live }
  }
}
