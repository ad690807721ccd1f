import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { PushlineError } from '../shared/errors.ts'

export interface ListenerOptions {
  readonly host: string
  readonly mqttPort: number
  readonly wsPort: number
  readonly handle: (stream: Duplex, req?: IncomingMessage) => unknown
}

export interface Listeners {
  readonly mqttPort: number
  readonly wsPort: number
  /** Stops accepting connections; live ones are closed by the broker. */
  close (): Promise<void>
}

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
    server.listen(port, host)
  })
}

/** Stops accepting. Does not wait for open connections: the broker closes those after this. */
function stopAccepting (server: NetServer | HttpServer): void {
  if (server.listening) server.close()
}

export async function startListeners (opts: ListenerOptions): Promise<Listeners> {
  const tcp = createNetServer((socket: Socket) => {
    // Small MQTT packets must not wait for Nagle's algorithm.
    socket.setNoDelay(true)
    opts.handle(socket)
  })
  const mqttPort = await listenOn(tcp, opts.host, opts.mqttPort, 'PUSHLINE_MQTT_PORT')

  const http = createHttpServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to /mqtt with the mqtt subprotocol\n')
  })
  const wss = new WebSocketServer({ server: http, path: '/mqtt' })
  wss.on('connection', (ws, req) => {
    opts.handle(createWebSocketStream(ws), req)
  })
  let wsPort: number
  try {
    wsPort = await listenOn(http, opts.host, opts.wsPort, 'PUSHLINE_WS_PORT')
  } catch (err) {
    stopAccepting(tcp)
    throw err
  }

  return {
    mqttPort,
    wsPort,
    async close () {
      stopAccepting(tcp)
      stopAccepting(http)
      // WebSocket sessions end with the broker's close of their clients; wss.close() only stops the upgrade handler.
      wss.close()
    }
  }
}
