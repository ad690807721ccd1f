import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { DEVICE_ID_PATTERN } from '../registry/device-service.ts'
import { PushlineError } from '../shared/errors.ts'
import { newTraceId } from '../shared/trace.ts'
import type { BroadcastStore } from '../stores/broadcast-store.ts'
import type { DeviceStore } from '../stores/device-store.ts'
import type { HistoryEntry, HistoryStore } from '../stores/history-store.ts'
import type { PresenceStore } from '../stores/presence-store.ts'
import type { PushJobBody, PushJobStore } from '../stores/push-job-store.ts'
import type { PushStatus, PushTarget, Receipt, ReceiptStore } from '../stores/receipt-store.ts'
import type { DeliveryChannel, TargetedDelivery } from './delivery-channel.ts'

// Operator pushes. One device or a list of devices: each device gets a history entry (its next message id)
// before anything is sent, then a receipt (queued, or failed for an unknown id), then, when presence says it is
// online, a delivery order to the node that holds its connection. A list is a job kept in the PushJobStore
// (push-job-store.ts): any API process claims it by lease and works through it in chunks, each chunk's history
// entries and receipts written in one atomic commit, so a job outlives the process that accepted it. A timer
// expires receipts still queued or sent after their push's ttl, a bounded page per tick. A group or everyone: the
// message is kept in the BroadcastStore for its ttl, and one broadcast order goes to every node, which writes it to
// its local subscribers of broadcast/groups/{group} or broadcast/all (and, within the ttl, to devices that
// subscribe later); those pushes keep counts only.

export const MAX_DEVICE_IDS = 100_000
const CHUNK = 1000
const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN)

export interface PushRequest {
  readonly deviceId?: string
  readonly deviceIds?: readonly string[]
  readonly group?: string
  readonly all?: boolean
  readonly data: unknown
  readonly qos?: 0 | 1
  readonly ttlSeconds?: number
  /** The caller's trace id (an HTTP request's); a new one when absent. */
  readonly traceId?: string
}

export interface PushView {
  readonly pushId: string
  readonly traceId: string | undefined
  readonly target: PushTarget
  readonly qos: 0 | 1
  readonly ttlSeconds: number
  readonly createdAt: number
  readonly progress: { readonly processed: number, readonly total: number | undefined, readonly done: boolean }
  readonly counts: PushStatus['counts']
  readonly devices: Receipt[]
  readonly next: string | undefined
}

export interface DeviceMessage {
  readonly id: number
  readonly pushId: string
  readonly sentAt: number
  readonly data: unknown
}

export interface PushServiceDeps {
  readonly devices: DeviceStore
  readonly presence: PresenceStore
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  /** Group and broadcast pushes within their ttl, for devices that subscribe later. */
  readonly broadcasts: BroadcastStore
  readonly channel: DeliveryChannel
  readonly logger: Logger
  readonly maxTtlSeconds: number
  readonly maxDataBytes: number
  /** Group and broadcast pushes live at once (each is cached by every broker node until its ttl ends); none: no bound. */
  readonly maxLiveBroadcasts?: number
  readonly jobs: PushJobStore
  readonly defaultTtlSeconds?: number
  readonly now?: () => number
  /** Identifies this process's job leases (default: a random id). */
  readonly owner?: string
  /** A job's lease; a dead holder's job is resumed by another process this long after its last chunk. */
  readonly jobLeaseMs?: number
  /** How often this process looks for jobs nobody holds. */
  readonly jobPollMs?: number
  /** How often the expiry sweep runs, and how many receipts it looks at per run at most. */
  readonly sweepMs?: number
  readonly sweepBatch?: number
  /** Waits until the push's records are on the Redis replicas (replica-wait.ts) before it is answered; absent in memory. */
  readonly confirmWrites?: () => Promise<void>
}

export interface PushService {
  push (request: PushRequest): Promise<{ pushId: string, traceId: string }>
  get (pushId: string, after: string | undefined, limit: number): Promise<PushView>
  /** The latest pushes, newest first, with their counts and progress. */
  recent (limit: number): Promise<PushStatus[]>
  /** A device's pull: its downlinks after `after`, oldest first; those still within ttl count as delivered. */
  pull (deviceId: string, after: number, limit: number): Promise<DeviceMessage[]>
  history (deviceId: string, range: { after?: number, before?: number, limit: number }): Promise<HistoryEntry[]>
  /** Waits until this process has no job to run (tests). */
  idle (): Promise<void>
  /** Stops claiming jobs and sweeping; a job in progress stops after its current chunk (another process resumes it). */
  close (): Promise<void>
}

function describeTarget (r: PushRequest): PushTarget {
  const given = [r.deviceId !== undefined, r.deviceIds !== undefined, r.group !== undefined, r.all !== undefined].filter(Boolean).length
  if (given !== 1) throw new PushlineError('IOT_ERR_PUSH_TARGET', `give exactly one target of deviceId, deviceIds, group, all (got ${given})`)
  if (r.deviceId !== undefined) return { kind: 'device', deviceId: r.deviceId }
  if (r.deviceIds !== undefined) {
    if (r.deviceIds.length === 0) throw new PushlineError('IOT_ERR_PUSH_TARGET', 'deviceIds is empty')
    if (r.deviceIds.length > MAX_DEVICE_IDS) throw new PushlineError('IOT_ERR_PUSH_TARGET', `deviceIds holds more than ${MAX_DEVICE_IDS} ids`)
    return { kind: 'devices', count: new Set(r.deviceIds).size }
  }
  if (r.group !== undefined) return { kind: 'group', group: r.group }
  if (r.all !== true) throw new PushlineError('IOT_ERR_PUSH_TARGET', 'all must be true when given')
  return { kind: 'all' }
}

interface PushBody { readonly data: unknown, readonly qos: 0 | 1, readonly expiresAt: number, readonly traceId: string }

export function createPushService (deps: PushServiceDeps): PushService {
  const { devices, presence, history, receipts, channel, logger } = deps
  const now = deps.now ?? Date.now
  const owner = deps.owner ?? `api-${randomUUID()}`
  const leaseMs = deps.jobLeaseMs ?? 10_000
  // Job runner and sweeper state (an object, so loops see changes made by other calls).
  const state: { runner?: Promise<void>, rerun: boolean, sweeping?: Promise<void>, closed: boolean } = { rerun: false, closed: false }

  /** Delivery orders for the online devices among `known`, to the nodes that hold their connections. */
  async function sendOnline (known: readonly string[], entries: readonly HistoryEntry[]): Promise<{ online: number, nodes: string[] }> {
    const where = await presence.getMany(known)
    const byNode = new Map<string, TargetedDelivery[]>()
    known.forEach((deviceId, i) => {
      const nodeId = where[i]?.nodeId
      if (nodeId === undefined) return
      let batch = byNode.get(nodeId)
      if (batch === undefined) byNode.set(nodeId, batch = [])
      batch.push({ deviceId, entry: entries[i] as HistoryEntry })
    })
    await Promise.all([...byNode].map(([nodeId, batch]) => channel.sendTo(nodeId, batch)))
    return { online: [...byNode.values()].reduce((n, b) => n + b.length, 0), nodes: [...byNode.keys()] }
  }

  function logRouted (traceId: string | undefined, pushId: string, devices: number, routed: { online: number, nodes: string[] }): void {
    logger.info({ event: 'push_routed', traceId, pushId, devices, ...routed },
      'delivery orders sent to the nodes that hold the devices online; offline ones are queued')
  }

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
      resent += (await sendOnline(queued.map((r) => r.deviceId), entries)).online
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
        delivering = sendOnline(known, ids.flatMap((id) => id === null ? [] : [{ ...entry, id }]))
          .then(async (routed) => {
            logRouted(traceId, pushId, chunk.ids.length, routed)
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

  /** Bounded work per tick: receipts still queued or sent after their push's ttl become expired. */
  async function sweep (): Promise<void> {
    let budget = deps.sweepBatch ?? 1000
    const at = now()
    for (const pushId of await receipts.dueForExpiry(at, 10)) {
      if (budget <= 0) break
      const page = Math.min(budget, 500)
      const r = await receipts.sweepExpired(pushId, page, at)
      budget -= page
      if (r.expired.length > 0) logger.info({ event: 'push_receipts_expired', pushId, count: r.expired.length }, 'receipts expired')
    }
  }

  const jobs = deps.jobs
  const timers = [
    setInterval(kick, deps.jobPollMs ?? 1000),
    setInterval(() => {
      state.sweeping ??= sweep().catch((err: Error) => {
        logger.warn({ event: 'push_sweep_failed', err: err.message }, 'receipt expiry sweep failed')
      }).finally(() => { state.sweeping = undefined })
    }, deps.sweepMs ?? 1000)
  ]
  for (const t of timers) t.unref()
  kick()

  return {
    async push (request) {
      const target = describeTarget(request)
      const ttlSeconds = request.ttlSeconds ?? deps.defaultTtlSeconds ?? Math.min(3600, deps.maxTtlSeconds)
      if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > deps.maxTtlSeconds) {
        throw new PushlineError('IOT_ERR_PUSH_TTL', `ttlSeconds must be an integer from 1 to ${deps.maxTtlSeconds}`)
      }
      const bytes = Buffer.byteLength(JSON.stringify(request.data) ?? '')
      if (bytes > deps.maxDataBytes) throw new PushlineError('IOT_ERR_PUSH_DATA_TOO_LARGE', `data is ${bytes} bytes as JSON, more than ${deps.maxDataBytes}`)
      const qos = request.qos ?? 1
      const createdAt = now()
      const pushId = `p-${createdAt.toString(36)}-${randomUUID().slice(0, 8)}`
      const traceId = request.traceId ?? newTraceId()
      const body: PushBody = { data: request.data, qos, expiresAt: createdAt + ttlSeconds * 1000, traceId }
      const record = { pushId, target, qos, ttlSeconds, createdAt, traceId }

      if (target.kind === 'device') {
        if (await devices.get(target.deviceId) === undefined) {
          throw new PushlineError('IOT_ERR_DEVICE_NOT_FOUND', `device ${target.deviceId} does not exist`, { id: target.deviceId })
        }
        await receipts.createPush(record, 1)
        const entry = await history.append(target.deviceId, { pushId, sentAt: createdAt, expiresAt: body.expiresAt, qos, data: request.data, traceId })
        await receipts.open(pushId, [{ deviceId: target.deviceId, state: 'queued', id: entry.id }], createdAt)
        const routed = await sendOnline([target.deviceId], [entry])
        await receipts.progress(pushId, 1, { total: 1 })
        logRouted(traceId, pushId, 1, routed)
      } else if (target.kind === 'devices') {
        const ids = [...new Set(request.deviceIds)]
        await receipts.createPush(record, ids.length)
        await jobs.create(pushId, ids, body)
        kick()
      } else {
        // Checked before anything is written; concurrent requests may overshoot by their number.
        if (deps.maxLiveBroadcasts !== undefined && await deps.broadcasts.countLive(createdAt) >= deps.maxLiveBroadcasts) {
          throw new PushlineError('IOT_ERR_PUSH_LIVE_LIMIT', `${deps.maxLiveBroadcasts} group and broadcast pushes are within their ttl already: wait until some expire, or send this one with a shorter ttl`, { limit: deps.maxLiveBroadcasts })
        }
        await receipts.createPush(record, undefined)
        const topic = target.kind === 'all' ? 'broadcast/all' : `broadcast/groups/${target.group}`
        const order = { pushId, topic, qos, sentAt: createdAt, data: request.data, traceId, expiresAt: body.expiresAt }
        // Stored first: a node that starts or a device that subscribes after the order still finds it.
        await deps.broadcasts.add(order)
        // Nothing to resolve for a count-only push: done before the order goes out, so the order's PUBLISH is the
        // last round trip of the request (on a node that also writes the broadcast, each later one waited for
        // its whole fan-out and the PUBACKs and acks coming back: 202 took 1.3–2.2 s at 100,000 devices).
        await receipts.progress(pushId, 0, { total: 0 })
        await channel.broadcast(order)
      }
      await deps.confirmWrites?.()
      logger.info({ event: 'push_accepted', traceId, pushId, target: target.kind, qos, ttlSeconds }, 'push accepted')
      return { pushId, traceId }
    },

    async get (pushId, after, limit) {
      const status = await receipts.getPush(pushId)
      if (status === undefined) throw new PushlineError('IOT_ERR_PUSH_NOT_FOUND', `push ${pushId} does not exist`)
      const targeted = status.target.kind === 'device' || status.target.kind === 'devices'
      const page = targeted ? await receipts.list(pushId, after, limit) : { receipts: [], next: undefined }
      return {
        pushId,
        traceId: status.traceId,
        target: status.target,
        qos: status.qos,
        ttlSeconds: status.ttlSeconds,
        createdAt: status.createdAt,
        progress: { processed: status.processed, total: status.total, done: status.done },
        counts: status.counts,
        devices: page.receipts,
        next: page.next
      }
    },

    async recent (limit) {
      return await receipts.recent(limit)
    },

    async pull (deviceId, after, limit) {
      const entries = await history.range(deviceId, { after, limit })
      const at = now()
      const live = entries.filter((e) => e.expiresAt > at)
      await Promise.all(live.map((e) => receipts.transition(e.pushId, deviceId, 'delivered', at)))
      const highest = live.at(-1)?.id
      if (highest !== undefined) await history.markDelivered(deviceId, highest)
      return entries.map((e) => ({ id: e.id, pushId: e.pushId, sentAt: e.sentAt, data: e.data }))
    },

    async history (deviceId, range) {
      return await history.range(deviceId, range)
    },

    async idle () {
      while (state.runner !== undefined) await state.runner
    },

    async close () {
      state.closed = true
      for (const t of timers) clearInterval(t)
      await state.runner
      await state.sweeping
    }
  }
}
