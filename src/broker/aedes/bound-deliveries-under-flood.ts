// Overload protection for QoS 0 traffic (docs/design.md, "Collapse under an open-loop flood": bare aedes queued
// hundreds of thousands of messages and fell below 1,000 msg/s). Three bounds:
// - per subscriber: while a connection's socket holds more than `subscriberBufferBytes` unsent, QoS 0 messages to
//   it are dropped and counted, instead of queueing without bound or stalling every publisher behind it;
// - per node: deliveries scheduled but not yet written are counted; above `deliveryQueueMax`, the node stops
//   reading its connections' sockets (TCP then pushes back on the publishers) until the backlog falls to half;
// - at twice `deliveryQueueMax` (traffic this node cannot pause, such as messages from other nodes), QoS 0
//   deliveries are dropped and counted.
// Messages published at QoS 1 are never dropped here, whatever the subscription's QoS: they wait for the socket
// (aedes's drainTimeout ends a frozen client), and their publisher is paused like any other. Push downlinks (written directly, DIRECT_BROKER_ID_SUFFIX) are exempt.
// Touches: client.deliver0 (wrapped per client), client._nextBatch (called), client.conn.writableLength, and the
// connection stream's read() (wrapped). Upstream lacks a per-subscriber bound and a way to pause reading.

import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import { clientInternals, type ClientInternals } from './internals.ts'

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
  /** aedes's connection handler with the bounds installed on each new client. */
  handle (stream: Duplex, req?: IncomingMessage): Client
  /** Deliveries scheduled and not yet written to their sockets. */
  backlog (): number
  /** Connections whose next read waits for the backlog to fall. */
  pausedReaders (): number
}

export function installFloodGuard (aedes: Aedes, opts: FloodGuardOptions): FloodGuard {
  let backlog = 0
  const paused = new Set<ClientInternals>()
  const low = Math.floor(opts.deliveryQueueMax / 2)

  const settle = (): void => {
    backlog--
    if (paused.size > 0 && backlog <= low) {
      const resume = [...paused]
      paused.clear()
      for (const c of resume) if (!c.closed) c._nextBatch()
    }
  }

  const handle = aedes.handle.bind(aedes) as (stream: Duplex, req?: IncomingMessage) => Client

  return {
    backlog: () => backlog,
    pausedReaders: () => paused.size,
    handle (stream, req) {
      const client = handle(stream, req)
      const c = clientInternals(client)

      // aedes reads a whole chunk with read(null) and dispatches every packet in it. While the node is behind,
      // that read waits: the bytes stay in the socket, TCP pushes back on the sender, and aedes's reader is
      // called again once the backlog is down to half. (read(0) is the stream's own refill call: let it pass.)
      const read = stream.read.bind(stream)
      stream.read = (size?: number) => {
        if (size !== 0 && backlog > opts.deliveryQueueMax) {
          if (!paused.has(c)) opts.onPublisherPaused()
          paused.add(c)
          return null
        }
        return read(size)
      }
      stream.once('close', () => { paused.delete(c) })

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
