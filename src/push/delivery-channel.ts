import type { LiveBroadcast } from '../stores/broadcast-store.ts'
import type { HistoryEntry } from '../stores/history-store.ts'

// How the push service reaches the broker nodes: targeted deliveries go to the one node that holds the device's
// connection, broadcasts to every node. The local channel calls the node in the same process (embedded mode);
// redis-delivery-channel.ts carries the same orders over Redis pub/sub (at most once: a node that misses an
// order delivers the entry at the device's next connect, or the device pulls it).

export interface TargetedDelivery {
  readonly deviceId: string
  readonly entry: HistoryEntry
}

/** A group or broadcast push as it goes to every node: the message kept in the BroadcastStore for its ttl. */
export type BroadcastDelivery = LiveBroadcast

export interface DeliveryHandlers {
  deliver (batch: readonly TargetedDelivery[]): void
  broadcast (order: BroadcastDelivery): void
  /** Orders may have been lost (the channel's connection came back): the node reloads what it can from the stores. */
  resync? (): void
}

export interface DeliveryChannel {
  sendTo (nodeId: string, batch: readonly TargetedDelivery[]): Promise<void>
  broadcast (order: BroadcastDelivery): Promise<void>
  /** Receives this node's orders (a broker node calls it once). */
  listen (nodeId: string, handlers: DeliveryHandlers): Promise<void>
  close (): Promise<void>
}

/** Downlink payload: {"id", "pushId", "sentAt", "data"} (docs/push.md, Payload). */
export function downlinkPayload (id: number | string, pushId: string, sentAt: number, data: unknown): Buffer {
  return Buffer.from(JSON.stringify({ id, pushId, sentAt, data }))
}

export function createLocalDeliveryChannel (): DeliveryChannel {
  let node: { nodeId: string, handlers: DeliveryHandlers } | undefined
  return {
    async sendTo (nodeId, batch) {
      if (node?.nodeId === nodeId) node.handlers.deliver(batch)
    },
    async broadcast (order) {
      node?.handlers.broadcast(order)
    },
    async listen (nodeId, handlers) {
      node = { nodeId, handlers }
    },
    async close () {
      node = undefined
    }
  }
}
