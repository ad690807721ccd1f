// Per-device downlink ids: the platform numbers a device's downlinks 1, 2, 3… so a gap means a loss and a
// repeat means a duplicate. Memory stays small: the contiguous prefix is one number, only ids received out of
// order are kept in a set.

export class IdTracker {
  /** Every id up to and including this one was received (0: none yet, or the first id seen minus one). */
  private contiguous: number
  private readonly ahead = new Set<number>()
  private started: boolean
  duplicates = 0
  unique = 0

  /** `known`: ids up to it were handled before this run (reused devices start where they stopped). */
  constructor (known?: number) {
    this.contiguous = known ?? 0
    this.started = known !== undefined
  }

  /** Records an id; returns false when it was seen already. */
  add (id: number): boolean {
    if (!this.started) {
      // A reused device's numbering does not start at 1: the first id seen sets the base.
      this.contiguous = id - 1
      this.started = true
    }
    if (id <= this.contiguous || this.ahead.has(id)) {
      this.duplicates++
      return false
    }
    this.unique++
    if (id === this.contiguous + 1) {
      this.contiguous = id
      while (this.ahead.delete(this.contiguous + 1)) this.contiguous++
    } else {
      this.ahead.add(id)
    }
    return true
  }

  /** The highest id below which nothing is missing: pull with after= this. */
  get lastContiguous (): number {
    return this.contiguous
  }

  get highest (): number {
    let max = this.contiguous
    for (const id of this.ahead) if (id > max) max = id
    return max
  }

  /** Ids missing between the first one seen and the highest. */
  get gaps (): number {
    return this.ahead.size === 0 ? 0 : this.highest - this.contiguous - this.ahead.size
  }

  has (id: number): boolean {
    return id <= this.contiguous || this.ahead.has(id)
  }
}
