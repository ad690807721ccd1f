// Bounds the HTTP requests one worker has in flight, so a ramp of thousands of devices does not open
// thousands of sockets to the registry at once.
//
// A whole worker's fleet (up to 18,000 devices) may wait at once: the queue is read from a moving head, because
// Array.prototype.shift can copy the rest of an array that large on every call (V8 moves the start of an array in
// place only while its storage is below the large-object size).

export class Limiter {
  private active = 0
  private queue: Array<() => void> = []
  private head = 0

  constructor (private readonly max: number) {}

  /** Tasks waiting for a slot. */
  get waiting (): number {
    return this.queue.length - this.head
  }

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.queue.push(resolve))
    this.active++
    try {
      return await task()
    } finally {
      this.active--
      this.next()
    }
  }

  private next (): void {
    if (this.head === this.queue.length) return
    const wake = this.queue[this.head] as () => void
    this.head++
    // Drop the slots already read once they are half the array, so it does not grow for as long as it is busy.
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    wake()
  }
}
