import type { Client } from 'aedes'
import type { Logger } from 'pino'
import { DIRECT_BROKER_ID_SUFFIX, type BrokerNode } from '../broker/create-broker-node.ts'
import { connackSent, deliverToClient, subscribedFilters, subscriptionQos, takePacketId } from '../broker/aedes/internals.ts'
import type { BroadcastStore } from '../stores/broadcast-store.ts'
import type { HistoryEntry, HistoryStore } from '../stores/history-store.ts'
import type { ReceiptStore } from '../stores/receipt-store.ts'
import { downlinkPayload, type BroadcastDelivery, type DeliveryChannel, type TargetedDelivery } from './delivery-channel.ts'
import { createBroadcastCounts } from './broadcast-counts.ts'
import { createLiveBroadcasts, type CachedBroadcast } from './live-broadcasts.ts'
import type { PushMetrics } from './push-metrics.ts'

// The broker node's side of push: writes downlinks to its local clients and moves their receipts.
// - targeted deliveries (from the delivery channel): written to the device's client on devices/{id}/down; the
//   receipt becomes sent once written (delivered at once for QoS 0);
// - PUBACK: delivered, and the device's delivered mark goes up;
// - the device's {"id": n} on devices/{id}/ack: acked;
// - the device's {"id": "<pushId>"} for a group or broadcast push: collected in memory (deduplicated per node)
//   and counted once per device in the receipt store at the next flush (broadcast-counts.ts);
// - a device that connects gets the history entries above its delivered mark whose receipt is still queued or
//   sent and whose ttl has not passed; those past their ttl become expired;
// - broadcasts: serialized once and written to the socket of every local client subscribed to the topic; the
//   devices written (QoS 1) and that got it (PUBACK, or QoS 0) are collected in memory per push and flushed to the
//   receipt store every flushMs, one script per push, which counts each device once;
// - catch-up of broadcasts: a client that subscribes to a topic with live broadcasts (live-broadcasts.ts), or a
//   persistent session whose subscriptions were restored, gets those it has neither got nor acked (one Redis
//   round trip for all of them; none when no broadcast is live for its topics);
// - after a gap in the delivery channel (its subscriber connection was lost), the broadcasts the node did not hear
//   of are written as their orders would have been, and each connected device gets its targeted downlinks still queued.

export interface PushAgentOptions {
  readonly nodeId: string
  /** Called for every downlink written to a connection. */
  readonly logger: Logger
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  /** The live broadcasts, loaded into the node's cache at start. */
  readonly broadcasts: BroadcastStore
  readonly channel: DeliveryChannel
  readonly flushMs?: number
  readonly now?: () => number
  /** Downlinks written and PUBACKed, by kind and QoS. */
  readonly metrics?: Pick<PushMetrics, 'downlinks' | 'downlinksDelivered'>
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

const CATCH_UP_LIMIT = 1000
/**
 * The delivered mark is a high-water mark: a PUBACK for id n can come before the one for n - 1, and a device that
 * drops then leaves n - 1 below the mark. Catch-up looks this far below the mark too (receipts decide what is sent).
 */
const CATCH_UP_BELOW_MARK = 100
const QUEUED_OR_SENT: ReadonlySet<string> = new Set(['queued', 'sent'])
const QUEUED: ReadonlySet<string> = new Set(['queued'])
/** Connected devices caught up at once after a gap in the delivery channel. */
const RESYNC_CONCURRENCY = 64

export function createPushAgent (opts: PushAgentOptions): PushAgent {
  const { history, receipts, logger } = opts
  const now = opts.now ?? Date.now
  const inFlight = new WeakMap<Client, Map<number, InFlight>>()
  const live = createLiveBroadcasts()
  /** Broadcasts a catch-up wrote to a connection: a restored session that also subscribes again gets each once. */
  const caughtUp = new WeakMap<Client, Set<string>>()
  const brokerId = `${opts.nodeId}${DIRECT_BROKER_ID_SUFFIX}`
  let counter = 0
  let broker: BrokerNode | undefined
  let flushTimer: NodeJS.Timeout | undefined
  let flushing: Promise<void> | undefined
  const fail = (what: string, context?: { traceId?: string, pushId: string }) => (err: Error): void => {
    logger.warn({ event: 'push_agent_error', what, traceId: context?.traceId, pushId: context?.pushId, err: err.message }, 'push receipt update failed')
  }
  const counts = createBroadcastCounts({ receipts, fail })

  /** The QoS a downlink on `topic` goes out with: aedes lowers it to the subscription's, so do it first. */
  function effectiveQos (client: Client, topic: string, qos: 0 | 1): 0 | 1 {
    const granted = subscriptionQos(client, topic)
    return granted !== undefined && granted < qos ? 0 : qos
  }

  /** Takes the client's next packet id, as aedes would, and remembers what it carries so the PUBACK can be matched. */
  function track (client: Client, tag: InFlight): number {
    const messageId = takePacketId(client)
    let m = inFlight.get(client)
    if (m === undefined) inFlight.set(client, m = new Map())
    m.set(messageId, tag)
    return messageId
  }

  /** Writes one targeted downlink through aedes (which keeps a persistent session's outgoing copy). Resolves the QoS it went out with. */
  function write (client: Client, topic: string, payload: Buffer, qos: 0 | 1, tag: InFlight): Promise<0 | 1> {
    const effective = effectiveQos(client, topic, qos)
    const messageId = effective === 1 ? track(client, tag) : undefined
    const packet = { cmd: 'publish', topic, payload, qos: effective, retain: false, dup: false, brokerId, brokerCounter: ++counter, messageId }
    return new Promise((resolve) => {
      deliverToClient(client, packet, () => {
        opts.metrics?.downlinks.inc({ kind: tag.kind, qos: effective })
        resolve(effective)
      })
    })
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
    return client !== undefined && connackSent(client) ? client : undefined
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

  /**
   * Writes the device's history entries whose receipt is in one of `states`: queued or sent when it connects (a
   * sent one was lost with the previous connection), queued only on a live connection after a gap, where a sent
   * one is still on its way.
   */
  async function catchUp (client: Client, states: ReadonlySet<string> = QUEUED_OR_SENT): Promise<void> {
    const deviceId = client.id
    const entries = await history.undelivered(deviceId, CATCH_UP_BELOW_MARK, CATCH_UP_LIMIT)
    for (const entry of entries) {
      if (client.closed) return
      const receipt = await receipts.getReceipt(entry.pushId, deviceId)
      if (receipt === undefined || !states.has(receipt.state)) continue
      await deliverEntry(client, deviceId, entry, 'catch-up')
    }
  }

  /** Whether the client takes writes on `topic` now: CONNACK sent, socket open, subscribed. */
  function writable (client: Client, topic: string): boolean {
    return connackSent(client) && client.connected && client.conn.destroyed !== true && subscriptionQos(client, topic) !== undefined
  }

  /** Writes one broadcast to one client; returns the QoS it went out with, undefined when not written. */
  function writeBroadcast (client: Client, cached: CachedBroadcast, tag: InFlight): 0 | 1 | undefined {
    const { topic, qos, pushId } = cached.broadcast
    if (!writable(client, topic)) return undefined
    if (effectiveQos(client, topic, qos) === 1) {
      client.conn.write(cached.frames[1].bytes(track(client, tag)))
      counts.sent(pushId, client.id)
      return 1
    }
    client.conn.write(cached.frames[0].bytes())
    counts.got(pushId, client.id)
    return 0
  }

  /**
   * Writes the broadcast straight to every local subscriber's socket, the packet serialized once
   * (publish-frame.ts), and keeps it in the node's cache for devices that subscribe within its ttl. Broadcasts
   * are not stored in any session: a device that drops before its PUBACK gets it again at its next subscribe.
   */
  function broadcast (order: BroadcastDelivery): void {
    const b = broker
    if (b === undefined) return
    const cached = live.add(order)
    const tag: InFlight = { kind: 'broadcast', pushId: order.pushId }
    const written = [0, 0]
    for (const client of b.liveClients()) {
      const qos = writeBroadcast(client, cached, tag)
      if (qos !== undefined) written[qos]++
    }
    const [atQos0 = 0, atQos1 = 0] = written
    if (atQos1 > 0) opts.metrics?.downlinks.inc({ kind: 'broadcast', qos: 1 }, atQos1)
    if (atQos0 > 0) opts.metrics?.downlinks.inc({ kind: 'broadcast', qos: 0 }, atQos0)
    logger.info({ event: 'push_broadcast_order', traceId: order.traceId, pushId: order.pushId, topic: order.topic, subscribers: atQos0 + atQos1 }, 'broadcast written to the local subscribers')
  }

  /** The live broadcasts on `topics` the device has neither got nor acked, written to its connection. */
  async function catchUpBroadcasts (client: Client, topics: readonly string[]): Promise<void> {
    const at = now()
    const done = caughtUp.get(client)
    const candidates = topics.flatMap((topic) => live.on(topic, at)).filter((c) => done?.has(c.broadcast.pushId) !== true)
    if (candidates.length === 0) return
    const missing = new Set(await receipts.notReceived(client.id, candidates.map((c) => c.broadcast.pushId)))
    if (client.closed) return
    let written = caughtUp.get(client)
    if (written === undefined) caughtUp.set(client, written = new Set())
    for (const cached of candidates) {
      const { pushId, traceId, topic } = cached.broadcast
      if (!missing.has(pushId) || written.has(pushId)) continue
      const qos = writeBroadcast(client, cached, { kind: 'broadcast', pushId })
      if (qos === undefined) continue
      written.add(pushId)
      opts.metrics?.downlinks.inc({ kind: 'broadcast', qos })
      logger.info({ event: 'downlink_written', traceId, pushId, deviceId: client.id, topic, qos, how: 'catch-up' }, 'broadcast written to a device that subscribed within its ttl')
    }
  }

  const broadcastTopic = (topic: string): boolean => topic === 'broadcast/all' || topic.startsWith('broadcast/groups/')

  const onSubscribe = (subscriptions: Array<{ topic: string }>, client: Client | null): void => {
    if (client === null || live.empty) return
    const topics = subscriptions.map((s) => s.topic).filter(broadcastTopic)
    if (topics.length > 0) catchUpBroadcasts(client, topics).catch(fail('broadcast catch-up'))
  }

  /** Fills the cache from the store at start. */
  async function loadLive (): Promise<void> {
    for (const kept of await opts.broadcasts.live(now())) live.add(kept)
  }

  /**
   * After the delivery channel's connection came back, orders published meanwhile never arrived: the broadcasts
   * this node did not hear of go to its subscribers now, as an order would have, and every connected device gets
   * its targeted downlinks still queued (docs/design.md: Redis drops a busy subscriber connection).
   */
  async function resync (): Promise<void> {
    const missed = (await opts.broadcasts.live(now())).filter((kept) => !live.has(kept.pushId, kept.topic))
    for (const order of missed) broadcast(order)
    const clients = (broker?.liveClients() ?? []).filter(connackSent)
    for (let i = 0; i < clients.length; i += RESYNC_CONCURRENCY) {
      await Promise.all(clients.slice(i, i + RESYNC_CONCURRENCY).map((c) => catchUp(c, QUEUED).catch(fail('catch-up after a delivery gap'))))
    }
    logger.warn({ event: 'push_resync', broadcasts: missed.length, devices: clients.length }, 'delivery orders may have been lost: missed broadcasts written, connected devices caught up')
  }

  const onClientReady = (client: Client): void => {
    catchUp(client).catch(fail('catch-up'))
    // A persistent session's restored subscriptions bring no subscribe event.
    if (live.empty || client.clean) return
    const topics = subscribedFilters(client).filter(broadcastTopic)
    if (topics.length > 0) catchUpBroadcasts(client, topics).catch(fail('broadcast catch-up'))
  }

  return {
    async start (b) {
      broker = b
      b.aedes.on('clientReady', onClientReady)
      b.aedes.on('subscribe', onSubscribe)
      // Listen first, then load: a broadcast accepted in between is in one or the other (or both).
      await opts.channel.listen(opts.nodeId, { deliver, broadcast, resync: () => { resync().catch(fail('resync after a delivery gap')) } })
      await loadLive()
      flushTimer = setInterval(() => { flushing ??= counts.flush().finally(() => { flushing = undefined }) }, opts.flushMs ?? 500)
    },
    onPuback (client, messageId) {
      const m = inFlight.get(client)
      const tag = m?.get(messageId)
      if (m === undefined || tag === undefined) return false
      m.delete(messageId)
      opts.metrics?.downlinksDelivered.inc({ kind: tag.kind })
      if (tag.kind === 'broadcast') {
        counts.got(tag.pushId, client.id)
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
        counts.acked(id, deviceId)
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
      broker?.aedes.off('subscribe', onSubscribe)
      if (flushTimer !== undefined) clearInterval(flushTimer)
      await flushing
      await counts.flush()
      await opts.channel.close()
    }
  }
}
