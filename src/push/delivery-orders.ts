import type { Logger } from 'pino'
import type { HistoryEntry } from '../stores/history-store.ts'
import type { PresenceStore } from '../stores/presence-store.ts'
import type { DeliveryChannel, TargetedDelivery } from './delivery-channel.ts'

// The delivery orders of targeted pushes: each online device's entry goes to the node that holds its connection
// (presence says which); offline devices get nothing here (they find the entry at their next connect, or pull it).

export interface Routed {
  readonly online: number
  readonly nodes: string[]
}

export interface DeliveryOrders {
  /** Delivery orders for the online devices among `known` (`entries[i]` is `known[i]`'s). */
  sendOnline (known: readonly string[], entries: readonly HistoryEntry[]): Promise<Routed>
  logRouted (traceId: string | undefined, pushId: string, devices: number, routed: Routed): void
}

export function createDeliveryOrders (deps: { readonly presence: PresenceStore, readonly channel: DeliveryChannel, readonly logger: Logger }): DeliveryOrders {
  const { presence, channel, logger } = deps
  return {
    async sendOnline (known, entries) {
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
    },
    logRouted (traceId, pushId, devices, routed) {
      logger.info({ event: 'push_routed', traceId, pushId, devices, ...routed },
        'delivery orders sent to the nodes that hold the devices online; offline ones are queued')
    }
  }
}
