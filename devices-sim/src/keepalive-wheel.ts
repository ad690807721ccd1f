// Keepalive for every connection of a worker on one timer: a wheel of slots, one slot per tick, each connection
// in the slot of the tick it joined at; every tick pings the connections of one slot, so each is pinged once per
// turn of the wheel. A timer per connection cost a Timeout object and a timer-list entry for each of the
// thousands of devices a worker holds, for what one interval does.
//
// A turn lasts at least `periodMs` and at most a quarter more, so with periodMs = 0.75 × keepalive a connection
// that sends nothing else still sends a packet within its keepalive (MQTT 3.1.1, 3.1.2.10).

export interface Pingable {
  ping (): void
}

export interface WheelTimers {
  setInterval (fn: () => void, ms: number): { unref?: () => unknown }
  clearInterval (handle: unknown): void
}

const MAX_TICK_MS = 1000

export class KeepaliveWheel {
  readonly #tickMs: number
  readonly #slots: Array<Set<Pingable>>
  readonly #timers: WheelTimers
  #at = 0
  #size = 0
  #handle: { unref?: () => unknown } | undefined

  constructor (periodMs: number, timers: WheelTimers = globalThis) {
    if (!(periodMs > 0)) throw new RangeError(`keepalive period must be positive, got ${periodMs}`)
    this.#tickMs = Math.min(MAX_TICK_MS, periodMs / 4)
    this.#slots = Array.from({ length: Math.ceil(periodMs / this.#tickMs) }, () => new Set<Pingable>())
    this.#timers = timers
  }

  /** Connections on the wheel. */
  get size (): number {
    return this.#size
  }

  /** Pings `member` once per turn, the first time within one turn from now, until the returned function is called. */
  add (member: Pingable): () => void {
    // The slot the wheel reaches last: a full turn before the first ping.
    const slot = this.#slots[this.#at] as Set<Pingable>
    slot.add(member)
    this.#size++
    if (this.#handle === undefined) {
      this.#handle = this.#timers.setInterval(() => { this.#tick() }, this.#tickMs)
      // The wheel never keeps a worker alive by itself: its sockets do.
      this.#handle.unref?.()
    }
    return () => {
      if (!slot.delete(member)) return
      this.#size--
      if (this.#size === 0 && this.#handle !== undefined) {
        this.#timers.clearInterval(this.#handle)
        this.#handle = undefined
      }
    }
  }

  #tick (): void {
    this.#at = (this.#at + 1) % this.#slots.length
    for (const member of this.#slots[this.#at] as Set<Pingable>) member.ping()
  }
}
