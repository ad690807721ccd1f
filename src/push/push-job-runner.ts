import type { Logger } from 'pino'
import { DEVICE_ID_PATTERN } from '../registry/device-service.ts'
import type { PushJobBody, PushJobStore } from '../stores/push-job-store.ts'
import type { ReceiptStore } from '../stores/receipt-store.ts'
import type { DeliveryOrders } from './delivery-orders.ts'

// Runs push jobs (a list of devices, kept in the PushJobStore): any API process claims a job by lease and works
// through it in chunks, each chunk's history entries and receipts written in one atomic commit, so a job outlives
// the process that accepted it. It claims jobs when told a new one exists and on a timer (jobs nobody holds).

const CHUNK = 1000
const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN)

export interface PushJobRunner {
  /** Claims and runs jobs until none is left (a job was created, or the poll timer fired). */
  kick (): void
  /** Waits until this process has no job to run. */
  idle (): Promise<void>
  /** Stops claiming jobs; a job in progress stops after its current chunk (another process resumes it). */
  close (): Promise<void>
}

export function startPushJobRunner (deps: {
  readonly jobs: PushJobStore
  readonly receipts: ReceiptStore
  readonly orders: DeliveryOrders
  readonly logger: Logger
  readonly now: () => number
  /** Identifies this process's job leases. */
  readonly owner: string
  readonly leaseMs: number
  readonly pollMs: number
}): PushJobRunner {
  const { jobs, receipts, orders, logger, now, owner, leaseMs } = deps
  // An object, so loops see changes made by other calls.
  const state: { runner?: Promise<void>, rerun: boolean, closed: boolean } = { rerun: false, closed: false }

  /**
   * A resumed job: the ids committed past `ordered` may have had no delivery order (their worker died between
   * the commit and the orders). Those still queued get their order again if online; a duplicate is allowed
   * (delivery is at least once, devices drop ids they have seen).
   */
  async function resendOrders (pushId: string, from: number, to: number, body: PushJobBody): Promise<void> {
    let resent = 0
    for (let at = from; at < to; at += CHUNK) {
      const ids = (await jobs.range(pushId, at, Math.min(to, at + CHUNK))).filter((id) => DEVICE_ID.test(id))
      const found = await Promise.all(ids.map((id) => receipts.getReceipt(pushId, id)))
      const queued = found.flatMap((r) => r?.state === 'queued' && r.id !== undefined ? [r] : [])
      // The receipt was opened at the entry's sentAt, in the same commit.
      const entries = queued.map((r) => ({ id: r.id as number, pushId, sentAt: r.at, expiresAt: body.expiresAt, qos: body.qos, data: body.data, traceId: body.traceId }))
      resent += (await orders.sendOnline(queued.map((r) => r.deviceId), entries)).online
    }
    await jobs.markOrdered(pushId, to)
    logger.info({ event: 'push_job_orders_resent', traceId: body.traceId, pushId, from, to, online: resent },
      'resumed job: delivery orders sent again for committed devices still queued')
  }

  /** Works through one claimed job chunk by chunk; stops when done or when another process took it over. */
  async function runJob (pushId: string): Promise<void> {
    const started = now()
    // The delivery orders of one chunk go out while the next chunk is committed (at most one chunk behind).
    let delivering: Promise<unknown> = Promise.resolve()
    let resumed = false
    try {
      for (;;) {
        if (state.closed || !await jobs.renew(pushId, owner, leaseMs, now())) return
        const chunk = await jobs.next(pushId, CHUNK)
        if (chunk === undefined) return
        if (!resumed) {
          resumed = true
          if (chunk.ordered < chunk.cursor) await resendOrders(pushId, chunk.ordered, chunk.cursor, chunk.body)
        }
        if (chunk.ids.length === 0) {
          await delivering
          await receipts.progress(pushId, 0, { total: chunk.total })
          await jobs.finish(pushId)
          logger.info({ event: 'push_job_done', traceId: chunk.body.traceId, pushId, devices: chunk.total, ms: now() - started }, 'push job done')
          return
        }
        // Malformed ids cannot be devices; the store checks the others' existence inside the commit.
        const candidates = chunk.ids.filter((id) => DEVICE_ID.test(id))
        const invalid = chunk.ids.filter((id) => !DEVICE_ID.test(id))
        const { traceId } = chunk.body
        const entry = { pushId, sentAt: now(), expiresAt: chunk.body.expiresAt, qos: chunk.body.qos, data: chunk.body.data, traceId }
        const ids = await jobs.commit(pushId, chunk.cursor, candidates, invalid, entry)
        if (ids === undefined) return
        await delivering
        const known = candidates.filter((_, i) => ids[i] !== null)
        delivering = orders.sendOnline(known, ids.flatMap((id) => id === null ? [] : [{ ...entry, id }]))
          .then(async (routed) => {
            orders.logRouted(traceId, pushId, chunk.ids.length, routed)
            await jobs.markOrdered(pushId, chunk.cursor + chunk.ids.length)
          })
      }
    } finally {
      // A failed order is not retried here: the device gets the entry at its next connect, or pulls it (a worker
      // that resumes the job sends the orders past `ordered` again).
      await delivering.catch((err: Error) => { logger.warn({ event: 'push_delivery_failed', pushId, err: err.message }, 'delivery orders failed') })
    }
  }

  /** Claims and runs jobs until none is left; one runner per process, started again if asked while running. */
  function kick (): void {
    if (state.closed) return
    if (state.runner !== undefined) { state.rerun = true; return }
    state.runner = (async () => {
      do {
        state.rerun = false
        let pushId: string | undefined
        while (!state.closed && (pushId = await jobs.claim(owner, leaseMs, now())) !== undefined) {
          await runJob(pushId).catch((err: Error) => {
            logger.error({ event: 'push_job_failed', pushId, err: err.message }, 'push job failed; another claim resumes it after the lease')
          })
        }
      } while (state.rerun && !state.closed)
    })().catch((err: Error) => {
      logger.warn({ event: 'push_job_claim_failed', err: err.message }, 'could not claim push jobs')
    }).finally(() => { state.runner = undefined })
  }

  const timer = setInterval(kick, deps.pollMs)
  timer.unref()
  return {
    kick,
    async idle () {
      while (state.runner !== undefined) await state.runner
    },
    async close () {
      state.closed = true
      clearInterval(timer)
      await state.runner
    }
  }
}
