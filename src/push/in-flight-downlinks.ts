import type { Client } from 'aedes'
import { takePacketId } from '../broker/aedes/internals.ts'

// The QoS 1 downlinks the push agent wrote past aedes's session store, by client and packet id, so that a PUBACK
// is matched to what it acknowledges: one device's history entry, or a broadcast.

export type InFlight =
  | { readonly kind: 'device', readonly deviceId: string, readonly pushId: string, readonly id: number, readonly traceId: string | undefined }
  | { readonly kind: 'broadcast', readonly pushId: string }

export interface InFlightDownlinks {
  /** Takes the client's next packet id, as aedes would, and remembers what it carries so the PUBACK can be matched. */
  track (client: Client, tag: InFlight): number
  /** What the PUBACK of `messageId` acknowledges, once; undefined when the id is not one of the agent's downlinks. */
  settle (client: Client, messageId: number): InFlight | undefined
}

export function createInFlightDownlinks (): InFlightDownlinks {
  const inFlight = new WeakMap<Client, Map<number, InFlight>>()
  return {
    track (client, tag) {
      const messageId = takePacketId(client)
      let m = inFlight.get(client)
      if (m === undefined) inFlight.set(client, m = new Map())
      m.set(messageId, tag)
      return messageId
    },
    settle (client, messageId) {
      const m = inFlight.get(client)
      const tag = m?.get(messageId)
      if (m === undefined || tag === undefined) return undefined
      m.delete(messageId)
      return tag
    }
  }
}
