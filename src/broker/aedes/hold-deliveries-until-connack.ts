import type { Aedes, Client } from 'aedes'
import { clientInternals } from './internals.ts'

// [MQTT-3.2.0-1] The first packet a server sends on a connection is CONNACK. aedes 1.2 restores a persistent
// session's subscriptions before it writes the CONNACK, and its write() accepts packets while the client is
// still connecting: a message routed to a restored subscription in that window (for example one a publisher
// on another node sent a moment earlier) went out before the CONNACK, and MQTT.js then gave up with
// "connack timeout" (seen in about one reconnect in ten across two nodes).
// This holds live deliveries for a client until its CONNACK is written and its stored queue has been sent
// ('clientReady'), then releases them in order, so a message still in flight when a session resumes does not
// overtake the older ones waiting in its queue.
// A clean session has no subscription before its CONNACK (aedes handles the SUBSCRIBEs it read early only after the
// CONNACK is written, and the push agent writes only to clients whose CONNACK is sent), so nothing can reach it in
// that window: it is not held, which spares every clean connect two wrappers, a map entry and a close listener.

// Touches: client.deliver0 and client.deliverQoS (wrapped per client). Upstream lacks a hook between restoring a
// session's subscriptions and writing its CONNACK.

export function createConnackGate (aedes: Aedes): { hold (client: Client, packet: { readonly clean?: boolean }): void } {
  const held = new WeakMap<Client, Array<() => void>>()

  aedes.on('clientReady', (client) => {
    const queue = held.get(client)
    held.delete(client)
    for (const release of queue ?? []) release()
  })

  return {
    hold (client, packet) {
      if (packet.clean !== false) return
      const c = clientInternals(client)
      const queue: Array<() => void> = []
      held.set(client, queue)
      for (const name of ['deliver0', 'deliverQoS'] as const) {
        const deliver = c[name]
        c[name] = (packet, cb) => {
          if (client.closed || !held.has(client)) return deliver(packet, cb)
          queue.push(() => deliver(packet, cb))
        }
      }
      // A refused or dropped connection never gets a CONNACK: release the mq callbacks so nothing waits on it.
      client.conn.once('close', () => {
        const q = held.get(client)
        held.delete(client)
        for (const release of q ?? []) release()
      })
    }
  }
}
