import type { Logger } from 'pino'
import type { ReceiptStore } from '../stores/receipt-store.ts'

// Expires receipts still queued or sent after their push's ttl: a bounded page of work per tick, one tick at a time.

export interface ReceiptSweeper {
  close (): Promise<void>
}

export function startReceiptSweeper (deps: {
  readonly receipts: ReceiptStore
  readonly logger: Logger
  readonly now: () => number
  readonly everyMs: number
  /** Receipts looked at per tick at most. */
  readonly batch: number
}): ReceiptSweeper {
  const { receipts, logger, now } = deps
  let sweeping: Promise<void> | undefined

  async function sweep (): Promise<void> {
    let budget = deps.batch
    const at = now()
    for (const pushId of await receipts.dueForExpiry(at, 10)) {
      if (budget <= 0) break
      const page = Math.min(budget, 500)
      const r = await receipts.sweepExpired(pushId, page, at)
      budget -= page
      if (r.expired.length > 0) logger.info({ event: 'push_receipts_expired', pushId, count: r.expired.length }, 'receipts expired')
    }
  }

  const timer = setInterval(() => {
    sweeping ??= sweep().catch((err: Error) => {
      logger.warn({ event: 'push_sweep_failed', err: err.message }, 'receipt expiry sweep failed')
    }).finally(() => { sweeping = undefined })
  }, deps.everyMs)
  timer.unref()
  return {
    async close () {
      clearInterval(timer)
      await sweeping
    }
  }
}
