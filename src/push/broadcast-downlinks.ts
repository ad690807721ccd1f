import type { Client } from 'aedes'
import { subscribedFilters } from '../broker/aedes/internals.ts'
import type { BroadcastStore } from '../stores/broadcast-store.ts'
import type { BroadcastDelivery } from './delivery-channel.ts'
import type { DownlinkWriter } from './downlink-writer.ts'
import type { InFlight } from './in-flight-downlinks.ts'
import { createLiveBroadcasts } from './live-broadcasts.ts'
import type { PushAgentContext } from './push-agent-context.ts'

// Group and broadcast pushes written to this node's subscribers:
// - broadcasts: serialized once and written to the socket of every local client subscribed to the topic; the
//   devices written (QoS 1) and that got it (PUBACK, or QoS 0) are collected in memory per push and flushed to the
//   receipt store every flushMs, one script per push, which counts each device once (broadcast-counts.ts);
// - catch-up of broadcasts: a client that subscribes to a topic with live broadcasts (live-broadcasts.ts), or a
//   persistent session whose subscriptions were restored, gets those it has neither got nor acked (one Redis
//   round trip for all of them; none when no broadcast is live for its topics).

export interface BroadcastDownlinks {
  /** The delivery channel's handler of a broadcast order. */
  broadcast (order: BroadcastDelivery): void
  /** Whether the node knows this push (received its order or loaded it). */
  has (pushId: string, topic: string): boolean
  /** Fills the cache from the store at start. */
  loadLive (): Promise<void>
  /** For aedes's 'subscribe' event. */
  onSubscribe (subscriptions: Array<{ topic: string }>, client: Client | null): void
  /** For aedes's 'clientReady' event: catch-up of a persistent session's restored subscriptions. */
  onClientReady (client: Client): void
}

const broadcastTopic = (topic: string): boolean => topic === 'broadcast/all' || topic.startsWith('broadcast/groups/')

export function createBroadcastDownlinks (deps: {
  readonly context: PushAgentContext
  readonly writer: DownlinkWriter
  /** The live broadcasts, loaded into the node's cache at start. */
  readonly broadcasts: BroadcastStore
}): BroadcastDownlinks {
  const { broker, receipts, logger, now, metrics, fail } = deps.context
  const { writer } = deps
  const live = createLiveBroadcasts()
  /** Broadcasts a catch-up wrote to a connection: a restored session that also subscribes again gets each once. */
  const caughtUp = new WeakMap<Client, Set<string>>()

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
      const qos = writer.writeBroadcast(client, cached, { kind: 'broadcast', pushId })
      if (qos === undefined) continue
      written.add(pushId)
      metrics?.downlinks.inc({ kind: 'broadcast', qos })
      logger.info({ event: 'downlink_written', traceId, pushId, deviceId: client.id, topic, qos, how: 'catch-up' }, 'broadcast written to a device that subscribed within its ttl')
    }
  }

  return {
    /**
     * Writes the broadcast straight to every local subscriber's socket, the packet serialized once
     * (publish-frame.ts), and keeps it in the node's cache for devices that subscribe within its ttl. Broadcasts
     * are not stored in any session: a device that drops before its PUBACK gets it again at its next subscribe.
     */
    broadcast (order) {
      const b = broker()
      if (b === undefined) return
      const cached = live.add(order)
      const tag: InFlight = { kind: 'broadcast', pushId: order.pushId }
      const written = [0, 0]
      for (const client of b.liveClients()) {
        const qos = writer.writeBroadcast(client, cached, tag)
        if (qos !== undefined) written[qos]++
      }
      const [atQos0 = 0, atQos1 = 0] = written
      if (atQos1 > 0) metrics?.downlinks.inc({ kind: 'broadcast', qos: 1 }, atQos1)
      if (atQos0 > 0) metrics?.downlinks.inc({ kind: 'broadcast', qos: 0 }, atQos0)
      logger.info({ event: 'push_broadcast_order', traceId: order.traceId, pushId: order.pushId, topic: order.topic, subscribers: atQos0 + atQos1 }, 'broadcast written to the local subscribers')
    },
    has (pushId, topic) {
      return live.has(pushId, topic)
    },
    async loadLive () {
      for (const kept of await deps.broadcasts.live(now())) live.add(kept)
    },
    onSubscribe (subscriptions, client) {
      if (client === null || live.empty) return
      const topics = subscriptions.map((s) => s.topic).filter(broadcastTopic)
      if (topics.length > 0) catchUpBroadcasts(client, topics).catch(fail('broadcast catch-up'))
    },
    onClientReady (client) {
      // A persistent session's restored subscriptions bring no subscribe event.
      if (live.empty || client.clean) return
      const topics = subscribedFilters(client).filter(broadcastTopic)
      if (topics.length > 0) catchUpBroadcasts(client, topics).catch(fail('broadcast catch-up'))
    }
  }
}
