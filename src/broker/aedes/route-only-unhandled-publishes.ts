// aedes routes every publish that authorizePublish lets through: there is no way for the hook to say "taken care
// of, acknowledge it but route nothing". The broker node's hooks consume uplinks, application acks and refused
// publishes themselves (create-broker-node.ts); routing them too would send each device's uplinks to any
// subscriber of its topic and, in cluster mode, cost a Redis PUBLISH each.
// aedes also announces every connect and disconnect on $SYS/{node}/new/clients and .../disconnect/clients, and
// every SUBSCRIBE and UNSUBSCRIBE on .../new/subscribes and .../new/unsubscribes: in cluster mode a Redis PUBLISH
// each (a device coming online made two), the client ones decoded by every node. Nothing listens to the last
// three, and no client may subscribe to $SYS; new/clients makes other nodes close a client with the same id, which
// the cluster member does from presence instead (onTakeover, and reconciliation when that close is lost).
// Touches: aedes.publish (replaced on the broker object). Upstream lacks a "consumed" answer from authorizePublish
// and an option to turn the client announcements off.

import type { Aedes, Client, PublishPacket } from 'aedes'
import { brokerInternals, type BrokerInternals } from './internals.ts'

export function routeOnlyUnhandledPublishes (aedes: Aedes, opts: { readonly nodeId: string, readonly consumed: (packet: PublishPacket) => boolean }): void {
  const broker = brokerInternals(aedes)
  const route = broker.publish.bind(aedes)
  const announcements = new Set(['new/clients', 'disconnect/clients', 'new/subscribes', 'new/unsubscribes'].map((what) => `$SYS/${opts.nodeId}/${what}`))
  const guarded: BrokerInternals['publish'] = (packet, client, done) => {
    // aedes calls publish(packet, client, done) after authorizePublish.
    if (client !== null && typeof client === 'object' && opts.consumed(packet)) return done()
    if (announcements.has(packet.topic)) {
      // aedes's own announcements pass the callback in the client's place.
      const callback = typeof client === 'function' ? client as () => void : done
      return callback?.()
    }
    route(packet, client as Client | null, done)
  }
  broker.publish = guarded
}
