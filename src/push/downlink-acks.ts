import type { Client } from 'aedes'
import type { BroadcastCounts } from './broadcast-counts.ts'
import type { InFlightDownlinks } from './in-flight-downlinks.ts'
import type { PushAgentContext } from './push-agent-context.ts'

// A device's acknowledgements of its downlinks move their receipts:
// - PUBACK: delivered, and the device's delivered mark goes up;
// - the device's {"id": n} on devices/{id}/ack: acked;
// - the device's {"id": "<pushId>"} for a group or broadcast push: collected in memory (deduplicated per node)
//   and counted once per device in the receipt store at the next flush (broadcast-counts.ts).
// Anything else on devices/{id}/ack is ignored.
// onDeviceAck settles once the ack is recorded, so the broker can hold a QoS 1 ack's PUBACK until then: an ack whose
// receipt update fails (Redis stalled or gone) is not acknowledged, and the device sends it again on its next
// connection, as it does a QoS 1 uplink that was not stored.

export interface DownlinkAcks {
  /** For the broker's onPuback hook: true when the packet id was one of this agent's downlinks. */
  onPuback (client: Client, messageId: number): boolean
  /** For the broker's onDeviceAck hook: resolves once the ack is recorded (or ignored), rejects when recording it failed. */
  onDeviceAck (deviceId: string, payload: Buffer): Promise<void>
}

export function createDownlinkAcks (deps: {
  readonly context: PushAgentContext
  readonly inFlight: InFlightDownlinks
  readonly counts: BroadcastCounts
}): DownlinkAcks {
  const { history, receipts, logger, now, metrics, fail } = deps.context
  const { inFlight, counts } = deps
  return {
    onPuback (client, messageId) {
      const tag = inFlight.settle(client, messageId)
      if (tag === undefined) return false
      metrics?.downlinksDelivered.inc({ kind: tag.kind })
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
        return Promise.resolve()
      }
      if (typeof id === 'string' && id.length > 0 && id.length <= 128) {
        // A failed flush logs once for all the acks it carried (broadcast-counts.ts), not once per ack.
        return counts.acked(id, deviceId)
      }
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return Promise.resolve()
      const n = id
      const recorded = history.get(deviceId, n).then(async (entry) => {
        if (entry === undefined) return
        logger.debug({ event: 'downlink_acked', traceId: entry.traceId, pushId: entry.pushId, deviceId, id: n }, 'application ack received')
        await receipts.transition(entry.pushId, deviceId, 'acked', now())
        await history.markDelivered(deviceId, n)
      })
      recorded.catch(fail('ack'))
      return recorded
    }
  }
}
