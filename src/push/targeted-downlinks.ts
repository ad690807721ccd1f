import type { Client } from 'aedes'
import { connackSent } from '../broker/aedes/internals.ts'
import type { HistoryEntry } from '../stores/history-store.ts'
import { downlinkPayload, type TargetedDelivery } from './delivery-channel.ts'
import type { DownlinkWriter } from './downlink-writer.ts'
import type { PushAgentContext } from './push-agent-context.ts'

// One device's downlinks (its history entries) written to its connection on this node:
// - targeted deliveries (from the delivery channel): written to the device's client on devices/{id}/down; the
//   receipt becomes sent once written (delivered at once for QoS 0);
// - a device that connects gets the history entries above its delivered mark whose receipt is still queued or
//   sent and whose ttl has not passed; those past their ttl become expired.

export interface TargetedDownlinks {
  /** The delivery channel's handler of a delivery order: writes each entry whose device is connected here. */
  deliver (batch: readonly TargetedDelivery[]): void
  /**
   * Writes the device's history entries whose receipt is queued or sent when it connects (a sent one was lost with
   * the previous connection), queued only on a live connection after a gap, where a sent one is still on its way.
   */
  catchUp (client: Client, after: 'connect' | 'gap'): Promise<void>
}

const CATCH_UP_LIMIT = 1000
/**
 * The delivered mark is a high-water mark: a PUBACK for id n can come before the one for n - 1, and a device that
 * drops then leaves n - 1 below the mark. Catch-up looks this far below the mark too (receipts decide what is sent).
 */
const CATCH_UP_BELOW_MARK = 100
const CATCH_UP_STATES: Readonly<Record<'connect' | 'gap', ReadonlySet<string>>> = {
  connect: new Set(['queued', 'sent']),
  gap: new Set(['queued'])
}

export function createTargetedDownlinks (deps: {
  readonly context: PushAgentContext
  readonly writer: DownlinkWriter
}): TargetedDownlinks {
  const { broker, history, receipts, logger, now, fail } = deps.context
  const { writer } = deps

  async function deliverEntry (client: Client, deviceId: string, entry: HistoryEntry, how: 'order' | 'catch-up'): Promise<void> {
    const at = now()
    const { traceId, pushId } = entry
    if (entry.expiresAt <= at) {
      logger.debug({ event: 'downlink_expired', traceId, pushId, deviceId, id: entry.id }, 'downlink past its ttl, not sent')
      await receipts.transition(entry.pushId, deviceId, 'expired', at)
      return
    }
    const payload = downlinkPayload(entry.id, entry.pushId, entry.sentAt, entry.data)
    const qos = await writer.write(client, `devices/${deviceId}/down`, payload, entry.qos, { kind: 'device', deviceId, pushId: entry.pushId, id: entry.id, traceId })
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
    const client = broker()?.localClient(deviceId)
    // Before CONNACK the client is left to the catch-up that runs when it is ready.
    return client !== undefined && connackSent(client) ? client : undefined
  }

  return {
    deliver (batch) {
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
    },
    async catchUp (client, after) {
      const states = CATCH_UP_STATES[after]
      const deviceId = client.id
      const entries = await history.undelivered(deviceId, CATCH_UP_BELOW_MARK, CATCH_UP_LIMIT)
      for (const entry of entries) {
        if (client.closed) return
        const receipt = await receipts.getReceipt(entry.pushId, deviceId)
        if (receipt === undefined || !states.has(receipt.state)) continue
        await deliverEntry(client, deviceId, entry, 'catch-up')
      }
    }
  }
}
