import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { PushlineError } from '../shared/errors.ts'
import { newTraceId } from '../shared/trace.ts'
import type { BroadcastStore } from '../stores/broadcast-store.ts'
import type { DeviceStore } from '../stores/device-store.ts'
import type { HistoryEntry, HistoryStore } from '../stores/history-store.ts'
import type { PresenceStore } from '../stores/presence-store.ts'
import type { PushJobStore } from '../stores/push-job-store.ts'
import type { PushStatus, PushTarget, Receipt, ReceiptStore } from '../stores/receipt-store.ts'
import type { DeliveryChannel } from './delivery-channel.ts'
import { createDeliveryOrders } from './delivery-orders.ts'
import { startPushJobRunner } from './push-job-runner.ts'
import { startReceiptSweeper } from './receipt-sweeper.ts'

// Operator pushes. One device or a list of devices: each device gets a history entry (its next message id)
// before anything is sent, then a receipt (queued, or failed for an unknown id), then, when presence says it is
// online, a delivery order to the node that holds its connection (delivery-orders.ts). A list is a job kept in the
// PushJobStore, which push-job-runner.ts works through; receipt-sweeper.ts expires receipts still queued or sent
// after their push's ttl. A group or everyone: the
// message is kept in the BroadcastStore for its ttl, and one broadcast order goes to every node, which writes it to
// its local subscribers of broadcast/groups/{group} or broadcast/all (and, within the ttl, to devices that
// subscribe later); those pushes keep counts only.

export const MAX_DEVICE_IDS = 100_000

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
  const { devices, history, receipts, channel, logger } = deps
  const now = deps.now ?? Date.now
  const owner = deps.owner ?? `api-${randomUUID()}`
  const orders = createDeliveryOrders({ presence: deps.presence, channel, logger })
  const jobs = deps.jobs
  const runner = startPushJobRunner({ jobs, receipts, orders, logger, now, owner, leaseMs: deps.jobLeaseMs ?? 10_000, pollMs: deps.jobPollMs ?? 1000 })
  const sweeper = startReceiptSweeper({ receipts, logger, now, everyMs: deps.sweepMs ?? 1000, batch: deps.sweepBatch ?? 1000 })
  runner.kick()

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
        const routed = await orders.sendOnline([target.deviceId], [entry])
        await receipts.progress(pushId, 1, { total: 1 })
        orders.logRouted(traceId, pushId, 1, routed)
      } else if (target.kind === 'devices') {
        const ids = [...new Set(request.deviceIds)]
        await receipts.createPush(record, ids.length)
        await jobs.create(pushId, ids, body)
        runner.kick()
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

    idle: runner.idle,

    async close () {
      await Promise.all([runner.close(), sweeper.close()])
    }
  }
}
