import { connect as netConnect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { generate, parser, type Packet } from 'mqtt-packet'

/** An MQTT.js client that never reconnects by itself and is ended after the test. */
export async function connectDevice (t: TestContext, url: string, id: string, token: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId: id, username: id, password: token, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts })
  t.after(() => client.endAsync(true))
  return client
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
