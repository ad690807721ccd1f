import type { Client } from 'aedes'
import type { Logger } from 'pino'
import type { Metrics } from '../metrics/metrics.ts'
import { DIRECT_BROKER_ID_SUFFIX, type BrokerNode } from '../broker/create-broker-node.ts'
import type { HistoryEntry, HistoryStore } from '../stores/history-store.ts'
import type { ReceiptCounts, ReceiptStore } from '../stores/receipt-store.ts'
import { publishFrame } from './publish-frame.ts'
import { downlinkPayload, type BroadcastDelivery, type DeliveryChannel, type TargetedDelivery } from './delivery-channel.ts'

// The broker node's side of push: writes downlinks to its local clients and moves their receipts.
// - targeted deliveries (from the delivery channel): written to the device's client on devices/{id}/down; the
//   receipt becomes sent once written (delivered at once for QoS 0);
// - PUBACK: delivered, and the device's delivered mark goes up;
// - the device's {"id": n} on devices/{id}/ack: acked;
// - the device's {"id": "<pushId>"} for a group or broadcast push: collected in memory (deduplicated per node)
//   and counted once per device in the receipt store at the next flush (one call per push, not per device);
// - a device that connects gets the history entries above its delivered mark whose receipt is still queued or
//   sent and whose ttl has not passed; those past their ttl become expired;
// - broadcasts: serialized once and written to the socket of every local client subscribed to the topic,
//   counted in memory, counts flushed to the receipt store every flushMs.

export interface PushAgentOptions {
  readonly nodeId: string
  /** Called for every downlink written to a connection. */
  readonly logger: Logger
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  readonly channel: DeliveryChannel
  readonly flushMs?: number
  readonly now?: () => number
  /** Downlinks written and PUBACKed, by kind and QoS. */
  readonly metrics?: Pick<Metrics, 'downlinks' | 'downlinksDelivered'>
}

export interface PushAgent {
  start (broker: BrokerNode): Promise<void>
  /** For the broker's onPuback hook: true when the packet id was one of this agent's downlinks. */
  onPuback (client: Client, messageId: number): boolean
  /** For the broker's onDeviceAck hook. */
  onDeviceAck (deviceId: string, payload: Buffer): void
  close (): Promise<void>
}

type InFlight =
  | { readonly kind: 'device', readonly deviceId: string, readonly pushId: string, readonly id: number, readonly traceId: string | undefined }
  | { readonly kind: 'broadcast', readonly pushId: string }

// aedes keeps these off its type declarations.
interface ClientInternals {
  _nextId: number
  connackSent: boolean
  connected: boolean
  conn: { write (chunk: Buffer): boolean, destroyed?: boolean }
  subscriptions: Record<string, { qos: number } | undefined>
  deliverQoS (packet: object, cb: () => void): void
}

const CATCH_UP_LIMIT = 1000
const MAX_PENDING_ACK_PUSHES = 1000
/**
 * The delivered mark is a high-water mark: a PUBACK for id n can come before the one for n - 1, and a device that
 * drops then leaves n - 1 below the mark. Catch-up looks this far below the mark too (receipts decide what is sent).
 */
const CATCH_UP_BELOW_MARK = 100

export function createPushAgent (opts: PushAgentOptions): PushAgent {
  const { history, receipts, logger } = opts
  const now = opts.now ?? Date.now
  const inFlight = new WeakMap<Client, Map<number, InFlight>>()
  const pending = new Map<string, Partial<ReceiptCounts>>()
  /** Application acks of count-only pushes not yet flushed, by push id. */
  const pendingAcks = new Map<string, Set<string>>()
  const brokerId = `${opts.nodeId}${DIRECT_BROKER_ID_SUFFIX}`
  let counter = 0
  let broker: BrokerNode | undefined
  let flushTimer: NodeJS.Timeout | undefined
  let flushing: Promise<void> | undefined
  const fail = (what: string, context?: { traceId?: string, pushId: string }) => (err: Error): void => {
    logger.warn({ event: 'push_agent_error', what, traceId: context?.traceId, pushId: context?.pushId, err: err.message }, 'push receipt update failed')
  }

  const count = (pushId: string, state: keyof ReceiptCounts, n: number): void => {
    let c = pending.get(pushId)
    if (c === undefined) pending.set(pushId, c = {})
    c[state] = (c[state] ?? 0) + n
  }

  /** The QoS a downlink on `topic` goes out with: aedes lowers it to the subscription's, so do it first. */
  function effectiveQos (c: ClientInternals, topic: string, qos: 0 | 1): 0 | 1 {
    const sub = c.subscriptions[topic]
    return sub !== undefined && sub.qos < qos ? 0 : qos
  }

  /** Takes the client's next packet id, as aedes would, and remembers what it carries so the PUBACK can be matched. */
  function track (client: Client, tag: InFlight): number {
    const c = client as unknown as ClientInternals
    const messageId = c._nextId
    c._nextId = c._nextId >= 65535 ? 1 : c._nextId + 1
    let m = inFlight.get(client)
    if (m === undefined) inFlight.set(client, m = new Map())
    m.set(messageId, tag)
    return messageId
  }

  /** Writes one targeted downlink through aedes (which keeps a persistent session's outgoing copy). Resolves the QoS it went out with. */
  function write (client: Client, topic: string, payload: Buffer, qos: 0 | 1, tag: InFlight): Promise<0 | 1> {
    const c = client as unknown as ClientInternals
    const effective = effectiveQos(c, topic, qos)
    const messageId = effective === 1 ? track(client, tag) : undefined
    const packet = { cmd: 'publish', topic, payload, qos: effective, retain: false, dup: false, brokerId, brokerCounter: ++counter, messageId }
    return new Promise((resolve) => c.deliverQoS(packet, () => {
      opts.metrics?.downlinks.inc({ kind: tag.kind, qos: effective })
      resolve(effective)
    }))
  }

  async function deliverEntry (client: Client, deviceId: string, entry: HistoryEntry, how: 'order' | 'catch-up'): Promise<void> {
    const at = now()
    const { traceId, pushId } = entry
    if (entry.expiresAt <= at) {
      logger.debug({ event: 'downlink_expired', traceId, pushId, deviceId, id: entry.id }, 'downlink past its ttl, not sent')
      await receipts.transition(entry.pushId, deviceId, 'expired', at)
      return
    }
    const payload = downlinkPayload(entry.id, entry.pushId, entry.sentAt, entry.data)
    const qos = await write(client, `devices/${deviceId}/down`, payload, entry.qos, { kind: 'device', deviceId, pushId: entry.pushId, id: entry.id, traceId })
    // Orders are logged once per order (push_delivery_order); a catch-up has no other line about the push here.
    logger[how === 'catch-up' ? 'info' : 'debug']({ event: 'downlink_written', traceId, pushId, deviceId, id: entry.id, qos, how }, 'downlink written to the device\'s connection')
    if (qos === 0) {
      await receipts.transition(entry.pushId, deviceId, 'delivered', now())
      await history.markDelivered(deviceId, entry.id)
    } else {
      await receipts.transition(entry.pushId, deviceId, 'sent', now())
    }
  }

  function ready (deviceId: string): Client | undefined {
    const client = broker?.localClient(deviceId)
    // Before CONNACK the client is left to the catch-up that runs when it is ready.
    return client !== undefined && (client as unknown as ClientInternals).connackSent ? client : undefined
  }

  function deliver (batch: readonly TargetedDelivery[]): void {
    let connected = 0
    for (const { deviceId, entry } of batch) {
      const client = ready(deviceId)
      if (client === undefined) continue
      connected++
      deliverEntry(client, deviceId, entry, 'order').catch(fail('deliver', entry))
    }
    // The push service sends one order per push and node, so the first entry names the push.
    const first = batch[0]?.entry
    logger.info({ event: 'push_delivery_order', traceId: first?.traceId, pushId: first?.pushId, devices: batch.length, connected },
      'delivery order received: downlinks written to the devices connected here (the others get them when they connect)')
  }

  async function catchUp (client: Client): Promise<void> {
    const deviceId = client.id
    const entries = await history.undelivered(deviceId, CATCH_UP_BELOW_MARK, CATCH_UP_LIMIT)
    for (const entry of entries) {
      if (client.closed) return
      const receipt = await receipts.getReceipt(entry.pushId, deviceId)
      if (receipt === undefined || (receipt.state !== 'queued' && receipt.state !== 'sent')) continue
      await deliverEntry(client, deviceId, entry, 'catch-up')
    }
  }

  /**
   * Writes the broadcast straight to every local subscriber's socket, the packet serialized once
   * (publish-frame.ts). Broadcasts are not stored in any session: a device that drops before its PUBACK does
   * not get it again, and its count stays at sent.
   */
  function broadcast (order: BroadcastDelivery): void {
    const b = broker
    if (b === undefined) return
    const payload = downlinkPayload(order.pushId, order.pushId, order.sentAt, order.data)
    const frames = { 0: publishFrame(order.topic, payload, 0), 1: publishFrame(order.topic, payload, 1) }
    const tag: InFlight = { kind: 'broadcast', pushId: order.pushId }
    let sent = 0
    let delivered = 0
    for (const client of b.liveClients()) {
      const c = client as unknown as ClientInternals
      if (!c.connackSent || !c.connected || c.conn.destroyed === true || c.subscriptions[order.topic] === undefined) continue
      if (effectiveQos(c, order.topic, order.qos) === 1) {
        c.conn.write(frames[1].bytes(track(client, tag)))
        sent++
      } else {
        c.conn.write(frames[0].bytes())
        delivered++
      }
    }
    if (sent > 0) count(order.pushId, 'sent', sent)
    if (delivered > 0) count(order.pushId, 'delivered', delivered)
    if (sent > 0) opts.metrics?.downlinks.inc({ kind: 'broadcast', qos: 1 }, sent)
    if (delivered > 0) opts.metrics?.downlinks.inc({ kind: 'broadcast', qos: 0 }, delivered)
    logger.info({ event: 'push_broadcast_order', traceId: order.traceId, pushId: order.pushId, topic: order.topic, subscribers: sent + delivered }, 'broadcast written to the local subscribers')
  }

  async function flush (): Promise<void> {
    const batch = [...pending.entries()]
    pending.clear()
    const acks = [...pendingAcks.entries()]
    pendingAcks.clear()
    // Counts first: a PUBACK's delivered is in place before the ack that moves it to acked.
    for (const [pushId, delta] of batch) await receipts.addCounts(pushId, delta).catch(fail('flush counts'))
    for (const [pushId, ids] of acks) await receipts.countAcks(pushId, [...ids]).catch(fail('flush acks'))
  }

  const onClientReady = (client: Client): void => { catchUp(client).catch(fail('catch-up')) }

  return {
    async start (b) {
      broker = b
      b.aedes.on('clientReady', onClientReady)
      await opts.channel.listen(opts.nodeId, { deliver, broadcast })
      flushTimer = setInterval(() => { flushing ??= flush().finally(() => { flushing = undefined }) }, opts.flushMs ?? 500)
    },
    onPuback (client, messageId) {
      const m = inFlight.get(client)
      const tag = m?.get(messageId)
      if (m === undefined || tag === undefined) return false
      m.delete(messageId)
      opts.metrics?.downlinksDelivered.inc({ kind: tag.kind })
      if (tag.kind === 'broadcast') {
        count(tag.pushId, 'sent', -1)
        count(tag.pushId, 'delivered', 1)
        return true
      }
      logger.debug({ event: 'downlink_delivered', traceId: tag.traceId, pushId: tag.pushId, deviceId: tag.deviceId, id: tag.id }, 'PUBACK received')
      receipts.transition(tag.pushId, tag.deviceId, 'delivered', now())
        .then(() => history.markDelivered(tag.deviceId, tag.id))
        .catch(fail('puback', tag))
      return true
    },
    onDeviceAck (deviceId, payload) {
      let id: unknown
      try {
        id = (JSON.parse(payload.toString('utf8')) as { id?: unknown }).id
      } catch {
        return
      }
      if (typeof id === 'string' && id.length > 0 && id.length <= 128) {
        let ids = pendingAcks.get(id)
        // Bounded: acks naming more distinct pushes than this between two flushes are dropped.
        if (ids === undefined && pendingAcks.size >= MAX_PENDING_ACK_PUSHES) return
        if (ids === undefined) pendingAcks.set(id, ids = new Set())
        ids.add(deviceId)
        return
      }
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return
      const n = id
      history.get(deviceId, n).then(async (entry) => {
        if (entry === undefined) return
        logger.debug({ event: 'downlink_acked', traceId: entry.traceId, pushId: entry.pushId, deviceId, id: n }, 'application ack received')
        await receipts.transition(entry.pushId, deviceId, 'acked', now())
        await history.markDelivered(deviceId, n)
      }).catch(fail('ack'))
    },
    async close () {
      broker?.aedes.off('clientReady', onClientReady)
      if (flushTimer !== undefined) clearInterval(flushTimer)
      await flushing
      await flush()
      await opts.channel.close()
    }
  }
}
