// Per-node connection limits, applied before aedes sees a connection: a cap on open connections and a token
// bucket on new ones. A refused connection costs no aedes client: it gets CONNACK 3 ("server unavailable")
// as soon as it sends its CONNECT, and is closed. Devices retry later, or ask the registry for another node.

import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

export type LimitRefusal = 'max_connections' | 'connect_rate'

export interface ConnectionLimitOptions {
  /** Open connections this node holds; 0: no cap. */
  readonly maxConnections: number
  /** New connections per second; 0: no limit. */
  readonly ratePerSecond: number
  readonly burst: number
  /** How long a refused connection may stay open waiting for its CONNECT. */
  readonly refusalTimeoutMs: number
  readonly onRefused: (reason: LimitRefusal) => void
  readonly now?: () => number
}

export type StreamHandler = (stream: Duplex, req?: IncomingMessage) => unknown

export interface ConnectionLimits {
  /** Wraps the broker's connection handler: connections within the limits go through, the others are refused. */
  wrap (handle: StreamHandler): StreamHandler
  /** Connections open now (admitted and not yet closed). */
  open (): number
}

/** MQTT 3.1.1 CONNACK, session present 0, return code 3: server unavailable. */
export const CONNACK_SERVER_UNAVAILABLE = Buffer.from([0x20, 0x02, 0x00, 0x03])

/** A token bucket: take() is true while a token is left. */
export function createTokenBucket (perSecond: number, burst: number, now: () => number = Date.now): { take: () => boolean } {
  let tokens = burst
  let last = now()
  return {
    take () {
      const t = now()
      tokens = Math.min(burst, tokens + (t - last) * perSecond / 1000)
      last = t
      if (tokens < 1) return false
      tokens -= 1
      return true
    }
  }
}

/** Answers the first bytes the client sends (its CONNECT) with CONNACK 3, then closes. */
function refuse (stream: Duplex, timeoutMs: number): void {
  const timer = setTimeout(() => stream.destroy(), timeoutMs)
  stream.on('error', () => {})
  stream.once('close', () => clearTimeout(timer))
  stream.once('data', () => {
    stream.end(CONNACK_SERVER_UNAVAILABLE)
    // The rest of what it sent is read and discarded, so the close is not held up by a full receive window.
    stream.resume()
  })
}

export function createConnectionLimits (opts: ConnectionLimitOptions): ConnectionLimits {
  const bucket = opts.ratePerSecond > 0 ? createTokenBucket(opts.ratePerSecond, opts.burst, opts.now) : undefined
  let open = 0
  return {
    open: () => open,
    wrap (handle) {
      return (stream, req) => {
        // The cap is checked first: a node that is full spends no rate token on a connection it cannot take.
        const reason: LimitRefusal | undefined = opts.maxConnections > 0 && open >= opts.maxConnections
          ? 'max_connections'
          : bucket !== undefined && !bucket.take() ? 'connect_rate' : undefined
        if (reason !== undefined) {
          opts.onRefused(reason)
          refuse(stream, opts.refusalTimeoutMs)
          return
        }
        open++
        stream.once('close', () => { open-- })
        return handle(stream, req)
      }
    }
  }
}

/**
 * Holds a client to the node's longest keepalive: one asking for none (0) or for more gets the maximum. MQTT
 * 3.1.1 cannot tell the client, so this is a server-side idle timeout: aedes closes a connection silent for 1.5
 * times the keepalive, which also ends half-open sockets whose peer vanished. Returns true when it changed it.
 */
export function boundKeepalive (packet: { keepalive?: number }, maxSeconds: number): boolean {
  if (packet.keepalive !== undefined && packet.keepalive > 0 && packet.keepalive <= maxSeconds) return false
  packet.keepalive = maxSeconds
  return true
}
