// Overload protection for QoS 0 traffic (research/aedes.md §6: under an open-loop flood bare aedes queued
// hundreds of thousands of messages and fell below 1,000 msg/s). Three bounds:
// - per subscriber: while a connection's socket holds more than `subscriberBufferBytes` unsent, QoS 0 messages to
//   it are dropped and counted, instead of queueing without bound or stalling every publisher behind it;
// - per node: deliveries scheduled but not yet written are counted; above `deliveryQueueMax`, the node stops
//   reading the sockets of its publishers (their current publish completes later, and aedes reads a socket's next
//   chunk only once the current one is done), until the backlog falls to half;
// - at twice `deliveryQueueMax` (traffic this node cannot pause, such as messages from other nodes), QoS 0
//   deliveries are dropped and counted.
// Messages published at QoS 1 are never dropped here, whatever the subscription's QoS: they wait for the socket
// (aedes's drainTimeout ends a frozen client), and their publisher is paused like any other. Push downlinks (written directly, DIRECT_BROKER_ID_SUFFIX) are exempt.

import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Aedes, Client, PublishPacket } from 'aedes'

export type DeliveryDrop = 'slow_subscriber' | 'node_overloaded'

export interface FloodGuardOptions {
  readonly subscriberBufferBytes: number
  readonly deliveryQueueMax: number
  /** Packets that must never be dropped (push downlinks). */
  readonly exempt: (packet: { brokerId?: string }) => boolean
  readonly onDropped: (reason: DeliveryDrop) => void
  /** A publisher's socket is not read until the node has caught up. */
  readonly onPublisherPaused: () => void
}

export interface FloodGuard {
  /** aedes's connection handler with the per-subscriber bound installed on each new client. */
  handle (stream: Duplex, req?: IncomingMessage): Client
  /** Deliveries scheduled and not yet written to their sockets. */
  backlog (): number
  /** Publishes whose completion (and the publisher's next socket read) waits for the backlog to fall. */
  pausedPublishes (): number
}

type Deliver = (packet: { brokerId?: string, qos?: number }, cb: () => void) => void
type PublishFn = (packet: PublishPacket, client: Client | null, done: (err?: Error) => void) => void

export function installFloodGuard (aedes: Aedes, opts: FloodGuardOptions): FloodGuard {
  let backlog = 0
  const waiting: Array<() => void> = []
  const low = Math.floor(opts.deliveryQueueMax / 2)

  const settle = (): void => {
    backlog--
    if (waiting.length > 0 && backlog <= low) for (const resume of waiting.splice(0)) resume()
  }

  const handle = aedes.handle.bind(aedes) as (stream: Duplex, req?: IncomingMessage) => Client
  const publish = (aedes.publish as unknown as PublishFn).bind(aedes)
  const paced: PublishFn = (packet, client, done) => {
    // Only a client's publish can be paused; the node's own (wills, API publishes) go through.
    if (client === null || typeof client !== 'object') return publish(packet, client, done)
    publish(packet, client, (err) => {
      if (backlog <= opts.deliveryQueueMax) return done(err)
      opts.onPublisherPaused()
      waiting.push(() => done(err))
    })
  }
  ;(aedes as unknown as { publish: PublishFn }).publish = paced

  return {
    backlog: () => backlog,
    pausedPublishes: () => waiting.length,
    handle (stream, req) {
      const client = handle(stream, req)
      const c = client as unknown as { deliver0: Deliver, conn: Duplex }
      const deliver = c.deliver0
      c.deliver0 = (packet, cb) => {
        // Only what was published at QoS 0 may be dropped: a QoS 1 message was acknowledged to its publisher, and
        // goes out (at the subscription's QoS) even to a QoS 0 subscription.
        if (packet.qos === 0 && !opts.exempt(packet)) {
          if (c.conn.writableLength >= opts.subscriberBufferBytes) {
            opts.onDropped('slow_subscriber')
            setImmediate(cb)
            return
          }
          if (backlog >= opts.deliveryQueueMax * 2) {
            opts.onDropped('node_overloaded')
            setImmediate(cb)
            return
          }
        }
        backlog++
        // aedes writes in a setImmediate of its own, queued before this one; its callback waits for the socket
        // to drain, which would hold the publisher (and every other subscriber of its message) behind the slowest
        // reader. The subscriber's own bound above stands in for that wait.
        deliver(packet, () => {})
        setImmediate(() => {
          settle()
          cb()
        })
      }
      return client
    }
  }
}
