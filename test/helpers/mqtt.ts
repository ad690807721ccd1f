import type { EventEmitter } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import { generate, parser, type Packet } from 'mqtt-packet'

/**
 * An MQTT.js client that never reconnects by itself and is ended after the test. It settles as MQTT.js's
 * connectAsync does (connected, or ended, or the first error), and keeps the messages that arrive before the
 * caller listens (keepEarlyMessages).
 */
export async function connectDevice (t: TestContext, url: string, id: string, token: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: id, username: id, password: token, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts })
  keepEarlyMessages(client)
  t.after(() => client.endAsync(true))
  await new Promise<void>((resolve, reject) => {
    const settle = (): void => {
      client.off('connect', onConnect)
      client.off('end', onConnect)
      client.off('error', onError)
    }
    const onConnect = (): void => { settle(); resolve() }
    const onError = (err: Error): void => { settle(); client.end(true); reject(err) }
    client.on('connect', onConnect)
    client.on('end', onConnect)
    client.on('error', onError)
  })
  return client
}

type MessageArgs = [topic: string, payload: Buffer, packet: IPublishPacket]

/**
 * MQTT.js emits every PUBLISH of one TCP read before an awaited connect lets its caller go on, so a message the
 * broker writes right after the CONNACK (a stored session's queue, a catch-up, a held delivery) is emitted before
 * the test can listen, and lost to it. Messages emitted while nobody listens are kept and emitted again, in order,
 * once the first 'message' listener is added (after the caller's synchronous set-up, so every listener it adds in
 * that turn gets them).
 */
export function keepEarlyMessages (client: MqttClient): void {
  const early: MessageArgs[] = []
  const keep = (...args: MessageArgs): void => { early.push(args) }
  client.on('message', keep)
  // MQTT.js's typed emitter leaves Node's own 'newListener' event off its event map.
  const events = client as unknown as EventEmitter
  const onNewListener = (event: string | symbol): void => {
    if (event !== 'message') return
    events.off('newListener', onNewListener)
    client.off('message', keep)
    queueMicrotask(() => { for (const args of early.splice(0)) client.emit('message', ...args) })
  }
  events.on('newListener', onNewListener)
}

export interface RawConnection {
  readonly socket: Socket
  /** Resolves with the next packet the broker sends. */
  next (): Promise<Packet>
  send (packet: Parameters<typeof generate>[0]): void
  /** Resolves when the broker has closed the socket. */
  closed: Promise<void>
}

/** A bare TCP connection speaking MQTT packets, for what MQTT.js will not send (bad ids, garbage). */
export async function rawConnect (t: TestContext, port: number): Promise<RawConnection> {
  const socket = netConnect(port, '127.0.0.1')
  t.after(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const p = parser({ protocolVersion: 4 })
  const packets: Packet[] = []
  const waiters: Array<(p: Packet) => void> = []
  p.on('packet', (packet: Packet) => {
    const w = waiters.shift()
    if (w !== undefined) w(packet)
    else packets.push(packet)
  })
  socket.on('data', (d) => p.parse(d))
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return {
    socket,
    closed,
    next: () => {
      const ready = packets.shift()
      if (ready !== undefined) return Promise.resolve(ready)
      return new Promise((resolve, reject) => {
        waiters.push(resolve)
        closed.then(() => reject(new Error('socket closed before a packet arrived')), () => {})
      })
    },
    send: (packet) => { socket.write(generate(packet)) }
  }
}

/** An assert.rejects matcher: MQTT.js's error for a SUBACK that refused the filter (return code 128). */
export function refusedSubscription (err: unknown): boolean {
  const granted = (err as { packet?: { granted?: unknown[] } }).packet?.granted
  return err instanceof Error && /^Subscribe error/.test(err.message) && Array.isArray(granted) && granted.includes(128)
}
