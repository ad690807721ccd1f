// Push downlinks are written to one client directly (src/push/downlink-writer.ts) with a brokerId ending in
// DIRECT_BROKER_ID_SUFFIX; their QoS 1 state is kept by the push agent, which matches the PUBACK itself. aedes would
// still store each in the session's outgoing queue (outgoingUpdate) and look it up again at the PUBACK
// (outgoingClearMessageId): entries nothing ever deletes for a persistent session, and a store round trip per
// downlink and per PUBACK (about 5% of a node's CPU in a 100,000-device broadcast).
// Touches: persistence.outgoingUpdate and persistence.outgoingClearMessageId (wrapped). Upstream lacks a PUBACK
// hook that carries the packet id and a way to write a QoS 1 packet that the session store does not keep.

import type { Client } from 'aedes'
import { sessionPersistence, type QueuedPacket } from './internals.ts'

export interface DirectDownlinkOptions {
  /** A packet written directly (its brokerId says so). */
  readonly isDirect: (packet: QueuedPacket) => boolean
  /** A PUBACK with its packet id; true when the id was a direct downlink's, so the store is not asked. */
  readonly onPuback?: (client: Client, messageId: number) => boolean
}

export function keepDirectDownlinksOutOfStore<P extends object> (persistence: P, opts: DirectDownlinkOptions): P {
  const store = sessionPersistence(persistence)
  const update = store.outgoingUpdate.bind(persistence)
  store.outgoingUpdate = async (client, packet) => {
    if (opts.isDirect(packet)) return
    return await update(client, packet)
  }
  // handlePuback calls outgoingClearMessageId with the PUBACK: the one place that sees its packet id.
  const onPuback = opts.onPuback
  if (onPuback !== undefined) {
    const clear = store.outgoingClearMessageId.bind(persistence)
    store.outgoingClearMessageId = (client, packet) => {
      if (packet.messageId !== undefined && packet.cmd === 'puback' && onPuback(client as Client, packet.messageId)) return Promise.resolve(undefined)
      return clear(client, packet)
    }
  }
  return persistence
}
