// The broker node's listeners and what stands in front of aedes on each connection: the byte meter, the
// connection limits (count and rate), and the WebSocket message bound that matches the packet-size limit.

import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { BrokerMetrics } from './broker-metrics.ts'
import { createNetworkByteMeter } from '../metrics/network-bytes.ts'
import { createConnectionLimits } from './connection-limits.ts'
import { startListeners, type Listeners } from './listeners.ts'
import { maxWebSocketMessageBytes } from './aedes/refuse-oversized-packets.ts'
import { loadTlsCredentials, type TlsFiles } from './tls-credentials.ts'

export interface ConnectionSettings {
  readonly host: string
  readonly mqttPort: number
  readonly wsPort: number
  /** MQTT over TLS and WebSocket over TLS besides the plain listeners. */
  readonly tls?: TlsFiles & { readonly mqttsPort: number, readonly wssPort: number }
  readonly subscriberBufferBytes: number
  readonly deliveryQueueMax: number
  readonly maxConnections: number
  readonly connectRatePerSecond: number
  readonly connectRateBurst: number
}

export interface ServeConnectionsOptions {
  readonly settings: ConnectionSettings
  readonly connectTimeoutMs: number
  /** Largest packet (remaining length) the broker reads. */
  readonly maxPacketBytes: number
  readonly handle: (stream: Duplex, req?: IncomingMessage) => unknown
  readonly logger: Logger
  readonly metrics: BrokerMetrics
}

export async function serveConnections (opts: ServeConnectionsOptions): Promise<Listeners> {
  const { settings, metrics, logger } = opts
  const bytes = createNetworkByteMeter()
  metrics.readNetworkBytesFrom(bytes.totals)
  const limits = createConnectionLimits({
    maxConnections: settings.maxConnections,
    ratePerSecond: settings.connectRatePerSecond,
    burst: settings.connectRateBurst,
    refusalTimeoutMs: opts.connectTimeoutMs,
    onRefused: (reason) => { metrics.connectsRefused.inc({ reason }) }
  })
  const tls = settings.tls === undefined
    ? undefined
    : { credentials: await loadTlsCredentials(settings.tls), mqttsPort: settings.tls.mqttsPort, wssPort: settings.tls.wssPort }
  return await startListeners({
    host: settings.host,
    mqttPort: settings.mqttPort,
    wsPort: settings.wsPort,
    connectTimeoutMs: opts.connectTimeoutMs,
    maxMessageBytes: maxWebSocketMessageBytes(opts.maxPacketBytes),
    onMessageTooLarge: (limit) => {
      metrics.uplinksRefused.inc({ reason: 'packet_too_large' })
      logger.warn({ event: 'packet_too_large', transport: 'websocket', limit }, 'WebSocket message over the size limit: connection closed before reading it')
    },
    tls,
    handle: limits.wrap((stream, req) => {
      bytes.track(stream, req)
      return opts.handle(stream, req)
    })
  })
}
