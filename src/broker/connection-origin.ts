import type { Client } from 'aedes'
import { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import type { ConnectionOrigin } from '../stores/presence-store.ts'

// Which listener a client came in through and from where, read off the objects aedes already holds: the socket
// for MQTT over TCP and TLS, the upgrade request's socket for WebSocket (its stream is not a socket).

const hostPort = (socket: Socket | undefined): string => {
  const ip = socket?.remoteAddress
  if (ip === undefined) return 'unknown'
  return `${ip.includes(':') ? `[${ip}]` : ip}:${socket?.remotePort ?? 0}`
}

export function connectionOrigin (client: Client): ConnectionOrigin {
  const socket = client.req?.socket
  if (socket !== undefined) return { transport: socket instanceof TLSSocket ? 'wss' : 'ws', address: hostPort(socket) }
  const conn = client.conn
  if (conn instanceof TLSSocket) return { transport: 'tls', address: hostPort(conn) }
  return { transport: 'tcp', address: hostPort(conn instanceof Socket ? conn : undefined) }
}
