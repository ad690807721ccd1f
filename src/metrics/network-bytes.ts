import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

// Bytes read from and written to MQTT connections, from the sockets' own counters: nothing is added to the
// per-packet path. Live sockets are read when Prometheus scrapes; a closed socket's bytes move to the totals.

/** Bytes that crossed MQTT connections (TCP and WebSocket) since start, the closed ones included. */
export interface NetworkBytes {
  readonly received: number
  readonly sent: number
}

export interface NetworkByteMeter {
  /** A new connection: the TCP socket itself, or a WebSocket stream with the upgrade request that holds its socket. */
  track (stream: Duplex, req?: IncomingMessage): void
  totals (): NetworkBytes
}

export function createNetworkByteMeter (): NetworkByteMeter {
  const live = new Set<Socket>()
  let closedReceived = 0
  let closedSent = 0
  return {
    track (stream, req) {
      const socket = req?.socket ?? stream
      if (!(socket instanceof Socket) || live.has(socket)) return
      live.add(socket)
      socket.once('close', () => {
        live.delete(socket)
        closedReceived += socket.bytesRead
        closedSent += socket.bytesWritten
      })
    },
    totals () {
      let received = closedReceived
      let sent = closedSent
      for (const s of live) {
        received += s.bytesRead
        sent += s.bytesWritten
      }
      return { received, sent }
    }
  }
}
