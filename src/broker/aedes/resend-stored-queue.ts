// After a gap in the cluster's pub/sub (redis-transport.ts), messages routed to this node's persistent sessions
// meanwhile are in their stored queues but were never written. aedes sends a stored queue only at CONNECT; this
// sends it to a connected client as a reconnect would. aedes drops a packet whose per-broker counter is not above
// the highest it has delivered to the client (its duplicate check), and the lost ones are below it: each stored
// packet is let through once, then the mark is put back. Duplicates are allowed at QoS 1.
// Touches: client.deliverQoS (called) and client.duplicates (read and written), persistence.outgoingStream.
// Upstream lacks a "resend the stored queue" call.

import type { Aedes, Client } from 'aedes'
import { brokerInternals, clientInternals } from './internals.ts'

/** Writes each client's stored queue to it; resolves the number of packets written. */
export async function resendStoredQueues (aedes: Aedes, clients: readonly Client[]): Promise<number> {
  const store = brokerInternals(aedes).persistence
  let sent = 0
  for (const client of clients) {
    const c = clientInternals(client)
    const highest = { ...c.duplicates }
    for await (const packet of store.outgoingStream(client)) {
      const { brokerId, brokerCounter } = packet
      if (brokerId !== undefined && brokerCounter !== undefined) c.duplicates[brokerId] = brokerCounter - 1
      await new Promise<void>((resolve) => { c.deliverQoS(packet, resolve) })
      sent++
    }
    for (const [id, counter] of Object.entries(highest)) c.duplicates[id] = Math.max(counter ?? 0, c.duplicates[id] ?? 0)
  }
  return sent
}
