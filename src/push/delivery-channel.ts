import type { HistoryEntry } from '../stores/history-store.ts'

// How the push service reaches the broker nodes: targeted deliveries go to the one node that holds the device's
// connection, broadcasts to every node. The local channel calls the node in the same process (embedded mode);
// redis-delivery-channel.ts carries the same orders over Redis pub/sub (at most once: a node that misses an
// order delivers the entry at the device's next connect, or the device pulls it).

export interface TargetedDelivery {
  readonly deviceId: string
  readonly entry: HistoryEntry
}

export interface BroadcastDelivery {
  readonly pushId: string
  /** broadcast/all or broadcast/groups/{group}. */
  readonly topic: string
  readonly qos: 0 | 1
  readonly sentAt: number
  readonly data: unknown
  readonly traceId?: string
  /** Epoch ms when the push's ttl ends: until then a device that subscribes to the topic gets it too. */
  readonly expiresAt: number
}

export interface DeliveryHandlers {
  deliver (batch: readonly TargetedDelivery[]): void
  broadcast (order: BroadcastDelivery): void
}

export interface DeliveryChannel {
  sendTo (nodeId: string, batch: readonly TargetedDelivery[]): Promise<void>
  broadcast (order: BroadcastDelivery): Promise<void>
  /** Receives this node's orders (a broker node calls it once). */
  listen (nodeId: string, handlers: DeliveryHandlers): Promise<void>
  close (): Promise<void>
}

/** Downlink payload: {"id", "pushId", "sentAt", "data"} (DESIGN.md). */
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
