// A bound on the size of one MQTT packet on the wire. aedes's parser (mqtt-packet) buffers a packet until all
// of it has arrived, whatever length its header announces (up to 256 MiB), so a client could make the node
// hold that much per connection. Here the connection is closed as soon as a header announces more than the
// bound; what is smaller but over PUSHLINE_MAX_PAYLOAD_BYTES is refused later, packet by packet, by the broker.

// Touches: client._parser.parse (wrapped per client) and client._parser.packet.length (read). Upstream (mqtt-packet)
// lacks a maximum packet size.

import type { Client } from 'aedes'
import { clientInternals } from './internals.ts'

/** Largest packet for a payload limit: the payload plus the longest topic (65,535 bytes) and the header fields. */
export function maxPacketBytes (maxPayloadBytes: number): number {
  return maxPayloadBytes + 65_535 + 16
}

/**
 * Largest WebSocket message that can carry one packet of `maxPacket` (remaining length) bytes: the packet plus its
 * fixed header (one type byte, up to four length bytes).
 */
export function maxWebSocketMessageBytes (maxPacket: number): number {
  return maxPacket + 5
}

export function limitPacketSize (client: Client, maxBytes: number, onRefused: (announced: number) => void): void {
  const c = clientInternals(client)
  const parser = c._parser
  const parse = parser.parse.bind(parser)
  parser.parse = (buf) => {
    const result = parse(buf)
    const announced = parser.packet.length
    if (announced > maxBytes) {
      onRefused(announced)
      // The error reaches aedes's client error handling, which closes the session like any protocol error.
      c.conn.destroy(new Error(`packet of ${announced} bytes is over the limit of ${maxBytes}`))
    }
    return result
  }
}
