import type { Client } from 'aedes'
import { DIRECT_BROKER_ID_SUFFIX } from '../broker/create-broker-node.ts'
import { connackSent, deliverToClient, subscriptionQos } from '../broker/aedes/internals.ts'
import type { BroadcastCounts } from './broadcast-counts.ts'
import type { InFlight, InFlightDownlinks } from './in-flight-downlinks.ts'
import type { CachedBroadcast } from './live-broadcasts.ts'
import type { PushAgentContext } from './push-agent-context.ts'

// Writes one downlink to one local client: a targeted one through aedes's QoS delivery, a broadcast's serialized
// frame straight to the socket. A QoS 1 write takes the client's next packet id and stays in flight until its
// PUBACK (in-flight-downlinks.ts).

export interface DownlinkWriter {
  /** Writes one targeted downlink through aedes (which keeps a persistent session's outgoing copy). Resolves the QoS it went out with. */
  write (client: Client, topic: string, payload: Buffer, qos: 0 | 1, tag: InFlight): Promise<0 | 1>
  /** Writes one broadcast to one client; returns the QoS it went out with, undefined when not written. */
  writeBroadcast (client: Client, cached: CachedBroadcast, tag: InFlight): 0 | 1 | undefined
}

export function createDownlinkWriter (deps: {
  readonly nodeId: string
  readonly context: Pick<PushAgentContext, 'metrics'>
  readonly inFlight: InFlightDownlinks
  readonly counts: BroadcastCounts
}): DownlinkWriter {
  const { inFlight, counts } = deps
  const { metrics } = deps.context
  const brokerId = `${deps.nodeId}${DIRECT_BROKER_ID_SUFFIX}`
  let counter = 0

  /** The QoS a downlink on `topic` goes out with: aedes lowers it to the subscription's, so do it first. */
  function effectiveQos (client: Client, topic: string, qos: 0 | 1): 0 | 1 {
    const granted = subscriptionQos(client, topic)
    return granted !== undefined && granted < qos ? 0 : qos
  }

  /** Whether the client takes writes on `topic` now: CONNACK sent, socket open, subscribed. */
  function writable (client: Client, topic: string): boolean {
    return connackSent(client) && client.connected && client.conn.destroyed !== true && subscriptionQos(client, topic) !== undefined
  }

  return {
    write (client, topic, payload, qos, tag) {
      const effective = effectiveQos(client, topic, qos)
      const messageId = effective === 1 ? inFlight.track(client, tag) : undefined
      const packet = { cmd: 'publish', topic, payload, qos: effective, retain: false, dup: false, brokerId, brokerCounter: ++counter, messageId }
      return new Promise((resolve) => {
        deliverToClient(client, packet, () => {
          metrics?.downlinks.inc({ kind: tag.kind, qos: effective })
          resolve(effective)
        })
      })
    },
    writeBroadcast (client, cached, tag) {
      const { topic, qos, pushId } = cached.broadcast
      if (!writable(client, topic)) return undefined
      if (effectiveQos(client, topic, qos) === 1) {
        client.conn.write(cached.frames[1].bytes(inFlight.track(client, tag)))
        counts.sent(pushId, client.id)
        return 1
      }
      client.conn.write(cached.frames[0].bytes())
      counts.got(pushId, client.id)
      return 0
    }
  }
}
