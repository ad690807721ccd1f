import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { DEVICE_ID_PATTERN } from '../registry/device-service.ts'
import { PushlineError } from '../shared/errors.ts'
import { newTraceId } from '../shared/trace.ts'
import type { DeviceStore } from '../stores/device-store.ts'
import type { HistoryEntry, HistoryStore } from '../stores/history-store.ts'
import type { PresenceStore } from '../stores/presence-store.ts'
import type { PushStatus, PushTarget, Receipt, ReceiptStore } from '../stores/receipt-store.ts'
import type { DeliveryChannel, TargetedDelivery } from './delivery-channel.ts'

// Operator pushes. One device or a list of devices: each device gets a history entry (its next message id)
// before anything is sent, then a receipt (queued, or failed for an unknown id), then, when presence says it is
// online, a delivery order to the node that holds its connection. A list is resolved as a background job in
// chunks, with progress in the push record. A group or everyone: one broadcast order that every node writes to
// its local subscribers of broadcast/groups/{group} or broadcast/all; those pushes keep counts only.

export const MAX_DEVICE_IDS = 100_000
const CHUNK = 500
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
  readonly channel: DeliveryChannel
  readonly logger: Logger
  readonly maxTtlSeconds: number
  readonly maxDataBytes: number
  readonly defaultTtlSeconds?: number
  readonly now?: () => number
}

export interface PushService {
  push (request: PushRequest): Promise<{ pushId: string, traceId: string }>
  get (pushId: string, after: string | undefined, limit: number): Promise<PushView>
  /** The latest pushes, newest first, with their counts and progress. */
  recent (limit: number): Promise<PushStatus[]>
  /** A device's pull: its downlinks after `after`, oldest first; those still within ttl count as delivered. */
  pull (deviceId: string, after: number, limit: number): Promise<DeviceMessage[]>
  history (deviceId: string, range: { after?: number, before?: number, limit: number }): Promise<HistoryEntry[]>
  /** Waits for running jobs (shutdown, tests). */
  idle (): Promise<void>
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
  const jobs = new Set<Promise<void>>()

  /** Appends, opens receipts and sends delivery orders for one chunk of device ids. */
  async function pushChunk (pushId: string, ids: readonly string[], body: PushBody): Promise<void> {
    const found = await Promise.all(ids.map(async (id) => DEVICE_ID.test(id) && await devices.get(id) !== undefined))
    const known = ids.filter((_, i) => found[i])
    const unknown = ids.filter((_, i) => !found[i])
    const sentAt = now()
    const entries = await Promise.all(known.map((id) => history.append(id, { pushId, sentAt, expiresAt: body.expiresAt, qos: body.qos, data: body.data, traceId: body.traceId })))
    await receipts.open(pushId, [
      ...known.map((deviceId, i) => ({ deviceId, state: 'queued' as const, id: (entries[i] as HistoryEntry).id })),
      ...unknown.map((deviceId) => ({ deviceId, state: 'failed' as const, reason: 'unknown device' }))
    ], sentAt)
    const where = await Promise.all(known.map((id) => presence.get(id)))
    const byNode = new Map<string, TargetedDelivery[]>()
    known.forEach((deviceId, i) => {
      const nodeId = where[i]?.nodeId
      if (nodeId === undefined) return
      let batch = byNode.get(nodeId)
      if (batch === undefined) byNode.set(nodeId, batch = [])
      batch.push({ deviceId, entry: entries[i] as HistoryEntry })
    })
    await Promise.all([...byNode].map(([nodeId, batch]) => channel.sendTo(nodeId, batch)))
    await receipts.progress(pushId, ids.length)
    logger.info({
      event: 'push_routed', traceId: body.traceId, pushId, devices: ids.length, unknown: unknown.length, online: [...byNode.values()].reduce((n, b) => n + b.length, 0), nodes: [...byNode.keys()]
    }, 'delivery orders sent to the nodes that hold the devices online; offline ones are queued')
  }

  async function runList (pushId: string, ids: readonly string[], body: PushBody): Promise<void> {
    const started = now()
    for (let i = 0; i < ids.length; i += CHUNK) {
      await pushChunk(pushId, ids.slice(i, i + CHUNK), body)
    }
    await receipts.progress(pushId, 0, { total: ids.length })
    logger.info({ event: 'push_job_done', traceId: body.traceId, pushId, devices: ids.length, ms: now() - started }, 'push job done')
  }

  /** After the ttl, receipts still queued or sent will never be delivered: mark them expired, once. */
  async function sweepExpired (pushId: string): Promise<void> {
    if (!await receipts.claimExpirySweep(pushId)) return
    let after: string | undefined
    do {
      const page = await receipts.list(pushId, after, 1000)
      const at = now()
      await Promise.all(page.receipts.filter((r) => r.state === 'queued' || r.state === 'sent').map((r) => receipts.transition(pushId, r.deviceId, 'expired', at)))
      after = page.next
    } while (after !== undefined)
  }

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
        await pushChunk(pushId, [target.deviceId], body)
        await receipts.progress(pushId, 0, { total: 1 })
      } else if (target.kind === 'devices') {
        const ids = [...new Set(request.deviceIds)]
        await receipts.createPush(record, ids.length)
        const job = runList(pushId, ids, body).catch((err: Error) => {
          logger.error({ event: 'push_job_failed', traceId, pushId, err: err.message }, 'push job failed')
        })
        jobs.add(job)
        job.finally(() => jobs.delete(job)).catch(() => {})
      } else {
        await receipts.createPush(record, undefined)
        const topic = target.kind === 'all' ? 'broadcast/all' : `broadcast/groups/${target.group}`
        await channel.broadcast({ pushId, topic, qos, sentAt: createdAt, data: request.data, traceId })
        await receipts.progress(pushId, 0, { total: 0 })
      }
      logger.info({ event: 'push_accepted', traceId, pushId, target: target.kind, qos, ttlSeconds }, 'push accepted')
      return { pushId, traceId }
    },

    async get (pushId, after, limit) {
      let status = await receipts.getPush(pushId)
      if (status === undefined) throw new PushlineError('IOT_ERR_PUSH_NOT_FOUND', `push ${pushId} does not exist`)
      const targeted = status.target.kind === 'device' || status.target.kind === 'devices'
      if (targeted && status.done && now() > status.createdAt + status.ttlSeconds * 1000) {
        await sweepExpired(pushId)
        status = await receipts.getPush(pushId) ?? status
      }
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
      await Promise.all([...jobs])
    }
  }
}
