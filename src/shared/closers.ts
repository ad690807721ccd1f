import type { Logger } from 'pino'

// The parts a start has opened, closed in reverse order of opening. Each step is bounded: a part stuck on an
// unreachable Redis must not hold the rest.

export interface Closers {
  /** Registers how to close a part that has just opened. */
  add (name: string, fn: () => Promise<unknown>): void
  /** True once close() has begun. */
  readonly closing: boolean
  /** The part close() is waiting for now, so a stop cut short can say which part held it. */
  readonly closingPart: string | undefined
  close (): Promise<void>
}

export function createClosers (opts: { readonly logger: Logger, readonly stepMs: number }): Closers {
  const steps: Array<{ name: string, fn: () => Promise<unknown> }> = []
  let closing = false
  let closingPart: string | undefined
  return {
    add (name, fn) { steps.push({ name, fn }) },
    get closing () { return closing },
    get closingPart () { return closingPart },
    async close () {
      closing = true
      for (const { name, fn } of steps.reverse().splice(0)) {
        let timer: NodeJS.Timeout | undefined
        closingPart = name
        try {
          await Promise.race([fn(), new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('timed out')), opts.stepMs) })])
        } catch (err) {
          opts.logger.error({ event: 'close_failed', part: name, err: (err as Error).message }, 'a part failed to close')
        } finally {
          clearTimeout(timer)
        }
      }
      closingPart = undefined
    }
  }
}
