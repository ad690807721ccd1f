// A lighter engine for plain load (--engine light): raw MQTT 3.1.1 packets over a net socket (light-packets.ts,
// mqtt-packet for the rest), with only what a simulated device does: connect, subscribe, publish QoS 0/1, PUBACK
// downlinks, ping. It keeps no offline queue and no store, so a connection costs a socket and one object; the
// connections of one connector share a keepalive wheel (keepalive-wheel.ts) instead of a timer each.

import { createConnection, type Socket } from 'node:net'
import { generate, parser, type IPublishPacket, type Packet } from 'mqtt-packet'
import { ConnectError, hostPort, type ConnectParams, type Connector, type DeviceConnection } from './connection.ts'
import { KeepaliveWheel } from './keepalive-wheel.ts'
import { encodeConnect, encodeSubscribe, readLightPackets } from './light-packets.ts'

interface Pending {
  resolve: (value: number[]) => void
  reject: (err: Error) => void
}

/** PINGREQ never changes: one buffer written to every socket (a socket does not modify what it writes). */
const PINGREQ = generate({ cmd: 'pingreq' })

/** Errors of a bind or connect from a given local port that another port would not meet. */
const PORT_TAKEN: ReadonlySet<string> = new Set(['EADDRINUSE', 'EADDRNOTAVAIL'])

/** A light connector; its connections ping through one keepalive wheel per keepalive value. */
export function createLightConnector (): Connector {
  const wheels = new Map<number, KeepaliveWheel>()
  const wheel = (keepalive: number): KeepaliveWheel => {
    let w = wheels.get(keepalive)
    if (w === undefined) {
      w = new KeepaliveWheel(keepalive * 1000 * 0.75)
      wheels.set(keepalive, w)
    }
    return w
  }
  // A fleet connects to a handful of node addresses: each URL is parsed once.
  const addresses = new Map<string, { host: string, port: number }>()
  const address = (url: string): { host: string, port: number } => {
    let a = addresses.get(url)
    if (a === undefined) {
      a = hostPort(url)
      addresses.set(url, a)
    }
    return a
  }
  return async (p) => {
    try {
      return await connectLight(p, address(p.url), wheel)
    } catch (err) {
      // The numbered port is taken (a listener on it, or the same four-tuple still closing): any port will do.
      if (p.localPort === undefined || !(err instanceof ConnectError) || !PORT_TAKEN.has(err.message)) throw err
      return await connectLight({ ...p, localPort: undefined }, address(p.url), wheel)
    }
  }
}

const connectLight = (p: ConnectParams, address: { host: string, port: number }, wheel: (keepalive: number) => KeepaliveWheel): Promise<DeviceConnection> =>
  new Promise((resolve, reject) => { new LightConnection(p, address, wheel, resolve, reject) }) // eslint-disable-line no-new -- the socket's listeners hold it

function onConnackTimeout (c: LightConnection): void {
  c.timedOut()
}

/**
 * One device's connection, as one object: its socket's listeners and a packet handler are its only closures, where a
 * function per state and per method cost every device of a worker a dozen more allocations.
 */
class LightConnection implements DeviceConnection {
  readonly #socket: Socket
  readonly #p: ConnectParams
  readonly #wheel: (keepalive: number) => KeepaliveWheel
  /** Until CONNACK (or the failure before it). */
  #settle: { resolve: (c: DeviceConnection) => void, reject: (err: Error) => void } | undefined
  readonly #timer: NodeJS.Timeout
  /** Created only when a packet comes that light-packets.ts does not read (light-packets.ts says why). */
  #parse: ReturnType<typeof parser> | undefined
  readonly #pending = new Map<number, Pending>()
  #nextId = 0
  #connected = false
  #closed = false
  #onMessage: ((topic: string, payload: Buffer) => void) | undefined
  #onClose: ((reason: string) => void) | undefined
  #lastError = 'connection closed'
  #leaveWheel: (() => void) | undefined
  readonly #onPacket = (packet: Packet): void => { this.#packet(packet) }

  constructor (p: ConnectParams, { host, port }: { host: string, port: number }, wheel: (keepalive: number) => KeepaliveWheel, resolve: (c: DeviceConnection) => void, reject: (err: Error) => void) {
    this.#p = p
    this.#wheel = wheel
    this.#settle = { resolve, reject }
    this.#timer = setTimeout(onConnackTimeout, p.timeoutMs, this)
    const socket = createConnection(p.localAddress === undefined ? { host, port } : p.localPort === undefined ? { host, port, localAddress: p.localAddress } : { host, port, localAddress: p.localAddress, localPort: p.localPort })
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('connect', () => { socket.write(encodeConnect(this.#p)) })
    socket.on('data', (chunk: Buffer) => { this.#data(chunk) })
    socket.on('error', (err: Error & { code?: string }) => { this.#error(err) })
    socket.on('close', () => { this.#close() })
  }

  timedOut (): void {
    if (!this.#connected) this.#fail(new ConnectError('timeout', 'connack timeout'))
  }

  /** The keepalive wheel's call. */
  ping (): void {
    this.#socket.write(PINGREQ)
  }

  #fail (err: ConnectError): void {
    clearTimeout(this.#timer)
    this.#socket.destroy()
    const settle = this.#settle
    this.#settle = undefined
    settle?.reject(err)
  }

  #data (chunk: Buffer): void {
    if (this.#parse === undefined) {
      const at = readLightPackets(chunk, this.#onPacket)
      if (at === chunk.length) return
      this.#parse = parser({ protocolVersion: 4 })
      this.#parse.on('packet', this.#onPacket)
      this.#parse.on('error', (err: Error) => {
        this.#lastError = `protocol error: ${err.message}`
        this.#socket.destroy()
      })
      chunk = chunk.subarray(at)
    }
    this.#parse.parse(chunk)
  }

  #packet (packet: Packet): void {
    switch (packet.cmd) {
      case 'connack': {
        if (packet.returnCode !== 0) {
          this.#fail(new ConnectError('refused', `CONNACK ${packet.returnCode ?? '?'}`, packet.returnCode))
          return
        }
        this.#connected = true
        clearTimeout(this.#timer)
        if (this.#p.keepalive > 0) this.#leaveWheel = this.#wheel(this.#p.keepalive).add(this)
        const settle = this.#settle
        this.#settle = undefined
        settle?.resolve(this)
        return
      }
      case 'publish': {
        const pub = packet as IPublishPacket
        if (pub.qos === 1 && pub.messageId !== undefined) this.#send({ cmd: 'puback', messageId: pub.messageId })
        this.#onMessage?.(pub.topic, Buffer.isBuffer(pub.payload) ? pub.payload : Buffer.from(pub.payload))
        return
      }
      case 'puback':
      case 'suback': {
        const id = packet.messageId
        if (id === undefined) return
        const waiter = this.#pending.get(id)
        this.#pending.delete(id)
        waiter?.resolve(packet.cmd === 'suback' ? (packet.granted as Array<number | { qos: number }>).map((g) => typeof g === 'number' ? g : g.qos) : [])
        break
      }
      default:
        // pingresp and the rest: nothing to do
    }
  }

  #error (err: Error & { code?: string }): void {
    this.#lastError = err.code ?? err.message
    if (!this.#connected) this.#fail(new ConnectError('network', this.#lastError))
  }

  #close (): void {
    this.#leaveWheel?.()
    if (!this.#connected) {
      this.#fail(new ConnectError('network', 'closed before CONNACK'))
      return
    }
    const err = new Error(this.#lastError)
    for (const w of this.#pending.values()) w.reject(err)
    this.#pending.clear()
    if (!this.#closed) {
      this.#closed = true
      this.#onClose?.(this.#lastError)
    }
  }

  #send (packet: Parameters<typeof generate>[0]): void {
    this.#socket.write(generate(packet))
  }

  #messageId (): number {
    do this.#nextId = this.#nextId % 65_535 + 1
    while (this.#pending.has(this.#nextId))
    return this.#nextId
  }

  publish (topic: string, payload: Buffer, qos: 0 | 1): Promise<void> {
    if (this.#socket.destroyed) return Promise.reject(new Error(this.#lastError))
    if (qos === 0) {
      this.#send({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false })
      return Promise.resolve()
    }
    return new Promise((resolve, reject) => {
      const id = this.#messageId()
      this.#pending.set(id, { resolve: () => resolve(), reject })
      this.#send({ cmd: 'publish', topic, payload, qos: 1, messageId: id, dup: false, retain: false })
    })
  }

  subscribe (filters: readonly string[], qos: 0 | 1): Promise<number[]> {
    if (this.#socket.destroyed) return Promise.reject(new Error(this.#lastError))
    return new Promise((resolve, reject) => {
      const id = this.#messageId()
      this.#pending.set(id, { resolve, reject })
      this.#socket.write(encodeSubscribe(id, filters, qos))
    })
  }

  onMessage (handler: (topic: string, payload: Buffer) => void): void {
    this.#onMessage = handler
  }

  onClose (handler: (reason: string) => void): void {
    this.#onClose = handler
  }

  end (): void {
    this.#closed = true
    this.#socket.destroy()
  }
}
