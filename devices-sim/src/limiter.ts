// Bounds the HTTP requests one worker has in flight, so a ramp of thousands of devices does not open
// thousands of sockets to the registry at once.

export class Limiter {
  private active = 0
  private readonly queue: Array<() => void> = []

  constructor (private readonly max: number) {}

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.queue.push(resolve))
    this.active++
    try {
      return await task()
    } finally {
      this.active--
      this.queue.shift()?.()
    }
  }
}
