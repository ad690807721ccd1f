import closeWithGrace from 'close-with-grace'
import type { Logger } from 'pino'

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const satisfies readonly NodeJS.Signals[]

/**
 * Stops the process on SIGINT or SIGTERM (or an uncaught error) through `stop`, bounded by `graceMs`. A stop cut
 * short by `graceMs` logs `stop_timed_out` naming the part `closingPart` reports as still closing, then exits with 1.
 * `npm start` execs the node, so npm forwards a signal it gets to it; a terminal's Ctrl-C reaches both, and the
 * node gets the same signal twice. A repeat of the signal that started the stop is ignored (the grace period
 * bounds the stop); another signal ends the process at once.
 */
export function stopOnSignals (opts: {
  readonly logger: Logger
  readonly graceMs: number
  readonly stop: () => Promise<void>
  readonly closingPart?: () => string | undefined
}): void {
  const { logger } = opts
  let stoppedBy: NodeJS.Signals | undefined
  const onTimeout = (delay: number): void => {
    const part = opts.closingPart?.()
    logger.error({ event: 'stop_timed_out', part, graceMs: delay }, `stop cut short after ${delay} ms while closing ${part ?? 'an unnamed part'}`)
  }
  const grace = closeWithGrace({ delay: opts.graceMs, skip: [...STOP_SIGNALS], onTimeout }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ event: 'fatal', err: err.message, stack: err.stack }, 'stopping after an uncaught error')
    logger.info({ event: 'stopping', signal: signal ?? stoppedBy }, 'stopping')
    await opts.stop()
    logger.info({ event: 'stopped' }, 'stopped')
  })
  const onStopSignal = (signal: NodeJS.Signals): void => {
    if (stoppedBy === undefined) {
      stoppedBy = signal
      grace.close()
    } else if (signal !== stoppedBy) {
      logger.error({ event: 'stop_forced', signal }, `${signal} while stopping: exiting now`)
      process.exit(1)
    }
  }
  for (const signal of STOP_SIGNALS) process.on(signal, onStopSignal)
}
