import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, type TlsOptions } from 'node:tls'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { PushlineError } from '../shared/errors.ts'

export interface ListenerOptions {
  readonly host: string
  readonly mqttPort: number
  readonly wsPort: number
  readonly handle: (stream: Duplex, req?: IncomingMessage) => unknown
  /** Sockets that have not finished their TLS handshake or WebSocket upgrade by then are closed. */
  readonly connectTimeoutMs: number
  /**
   * Largest WebSocket message a client may send: a frame whose header announces more ends the connection
   * (close code 1009) before any of it is buffered.
   */
  readonly maxMessageBytes: number
  /** A WebSocket client announced a message over maxMessageBytes and was closed. */
  readonly onMessageTooLarge?: (limit: number) => void
  /** MQTT over TLS and WebSocket over TLS besides the plain listeners, when a certificate is configured. */
  readonly tls?: {
    readonly credentials: TlsOptions
    readonly mqttsPort: number
    readonly wssPort: number
  }
}

export interface Listeners {
  readonly mqttPort: number
  readonly wsPort: number
  /** Set when TLS is configured. */
  readonly mqttsPort: number | undefined
  readonly wssPort: number | undefined
  /** Stops accepting connections; live ones are closed by the broker. */
  close (): Promise<void>
}

/**
 * Connections the kernel completes and queues for a listener until the process accepts them; Linux caps it at
 * net.core.somaxconn. Node's default (511) overflowed while a node's event loop was busy for a moment during a
 * fleet coming online: each SYN dropped then costs the device a retransmit 1, 3, 7 s later (docs/limits.md).
 */
export const ACCEPT_BACKLOG = 65_535

/** Listens, and turns EADDRINUSE into an error that names the port and the setting that changes it. */
export function listenOn (server: NetServer | HttpServer, host: string, port: number, setting: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening)
      if (err.code === 'EADDRINUSE') {
        reject(new PushlineError('IOT_ERR_LISTEN', `port ${port} on ${host} is already in use: stop what holds it or set ${setting} to another port`, { port, setting }))
      } else if (err.code === 'EACCES') {
        reject(new PushlineError('IOT_ERR_LISTEN', `no permission to listen on port ${port}: set ${setting} to a port above 1023`, { port, setting }))
      } else {
        reject(err)
      }
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen({ port, host, backlog: ACCEPT_BACKLOG })
  })
}

/** Stops accepting. Does not wait for open connections: the broker closes those after this. */
function stopAccepting (server: NetServer | HttpServer): void {
  if (server.listening) server.close()
}

/** MQTT over WebSocket at /mqtt on an HTTP(S) server; anything else gets 426. */
function serveWebSocket (http: HttpServer, opts: ListenerOptions): WebSocketServer {
  // A socket that never completes its upgrade request is closed like one that never sends CONNECT.
  http.headersTimeout = opts.connectTimeoutMs
  http.requestTimeout = opts.connectTimeoutMs
  // Without maxPayload, ws buffers up to 100 MiB of a frame before the MQTT parser (and its packet-size limit) sees it.
  const wss = new WebSocketServer({ server: http, path: '/mqtt', maxPayload: opts.maxMessageBytes })
  wss.on('connection', (ws, req) => {
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') opts.onMessageTooLarge?.(opts.maxMessageBytes)
    })
    opts.handle(createWebSocketStream(ws), req)
  })
  return wss
}

function onTcp (opts: ListenerOptions): (socket: Socket) => void {
  return (socket) => {
    // Small MQTT packets must not wait for Nagle's algorithm.
    socket.setNoDelay(true)
    opts.handle(socket)
  }
}

/** How often Node checks the upgrade-request timeouts (its default, 30 s, would let sockets outlive the bound). */
const checkEvery = (opts: ListenerOptions): number => Math.max(250, Math.min(30_000, Math.floor(opts.connectTimeoutMs / 4)))

const upgradeRequired = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to /mqtt with the mqtt subprotocol\n')
}

export async function startListeners (opts: ListenerOptions): Promise<Listeners> {
  const servers: Array<NetServer | HttpServer> = []
  const websockets: WebSocketServer[] = []
  const stopAll = (): void => {
    for (const server of servers) stopAccepting(server)
    // WebSocket sessions end with the broker's close of their clients; wss.close() only stops the upgrade handler.
    for (const wss of websockets) wss.close()
  }
  const listen = async (server: NetServer | HttpServer, port: number, setting: string): Promise<number> => {
    servers.push(server)
    return await listenOn(server, opts.host, port, setting)
  }
  try {
    const mqttPort = await listen(createNetServer(onTcp(opts)), opts.mqttPort, 'PUSHLINE_MQTT_PORT')
    const http = createHttpServer({ connectionsCheckingInterval: checkEvery(opts) }, upgradeRequired)
    websockets.push(serveWebSocket(http, opts))
    const wsPort = await listen(http, opts.wsPort, 'PUSHLINE_WS_PORT')

    let mqttsPort: number | undefined
    let wssPort: number | undefined
    if (opts.tls !== undefined) {
      const { credentials } = opts.tls
      // handshakeTimeout: a client that opens TCP and never finishes the handshake holds a socket for no more than this.
      const tls = createTlsServer({ ...credentials, handshakeTimeout: opts.connectTimeoutMs }, onTcp(opts))
      // A failed handshake (an untrusting client, garbage) is the client's problem, not an error of the node.
      tls.on('tlsClientError', (_err, socket) => { socket.destroy() })
      mqttsPort = await listen(tls, opts.tls.mqttsPort, 'PUSHLINE_MQTTS_PORT')
      const https = createHttpsServer({ ...credentials, handshakeTimeout: opts.connectTimeoutMs, connectionsCheckingInterval: checkEvery(opts) }, upgradeRequired)
      websockets.push(serveWebSocket(https, opts))
      wssPort = await listen(https, opts.tls.wssPort, 'PUSHLINE_WSS_PORT')
    }
    return {
      mqttPort,
      wsPort,
      mqttsPort,
      wssPort,
      async close () { stopAll() }
    }
  } catch (err) {
    stopAll()
    throw err
  }
}
