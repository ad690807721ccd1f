// A lighter engine for plain load (--engine light): raw MQTT 3.1.1 packets (mqtt-packet) over a net socket,
// with only what a simulated device does: connect, subscribe, publish QoS 0/1, PUBACK downlinks, ping.
// It keeps no offline queue and no store, so a connection costs a socket, a parser and a few closures; the
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

const connectLight = (p: ConnectParams, { host, port }: { host: string, port: number }, wheel: (keepalive: number) => KeepaliveWheel): Promise<DeviceConnection> => new Promise((resolve, reject) => {
  const socket: Socket = createConnection({ host, port, ...(p.localAddress !== undefined && { localAddress: p.localAddress, ...(p.localPort !== undefined && { localPort: p.localPort }) }) })
  socket.setNoDelay(true)
  // Created only when a packet comes that light-packets.ts does not read (light-packets.ts says why).
  let parse: ReturnType<typeof parser> | undefined
  const pending = new Map<number, Pending>()
  let nextId = 0
  let connected = false
  let closed = false
  let onMessage: ((topic: string, payload: Buffer) => void) | undefined
  let onClose: ((reason: string) => void) | undefined
  let lastError = 'connection closed'
  let leaveWheel: (() => void) | undefined

  const timer = setTimeout(() => {
    if (connected) return
    fail(new ConnectError('timeout', 'connack timeout'))
  }, p.timeoutMs)

  function fail (err: ConnectError): void {
    clearTimeout(timer)
    socket.destroy()
    reject(err)
  }
  const send = (packet: Parameters<typeof generate>[0]): void => { socket.write(generate(packet)) }
  const messageId = (): number => {
    do nextId = nextId % 65_535 + 1
    while (pending.has(nextId))
    return nextId
  }

  const onPacket = (packet: Packet): void => {
    switch (packet.cmd) {
      case 'connack':
        if (packet.returnCode !== 0) {
          fail(new ConnectError('refused', `CONNACK ${packet.returnCode ?? '?'}`, packet.returnCode))
          return
        }
        connected = true
        clearTimeout(timer)
        if (p.keepalive > 0) leaveWheel = wheel(p.keepalive).add({ ping: () => { socket.write(PINGREQ) } })
        resolve(conn)
        return
      case 'publish': {
        const pub = packet as IPublishPacket
        if (pub.qos === 1 && pub.messageId !== undefined) send({ cmd: 'puback', messageId: pub.messageId })
        onMessage?.(pub.topic, Buffer.isBuffer(pub.payload) ? pub.payload : Buffer.from(pub.payload))
        return
      }
      case 'puback':
      case 'suback': {
        const id = packet.messageId
        if (id === undefined) return
        const waiter = pending.get(id)
        pending.delete(id)
        waiter?.resolve(packet.cmd === 'suback' ? (packet.granted as Array<number | { qos: number }>).map((g) => typeof g === 'number' ? g : g.qos) : [])
        break
      }
      default:
        // pingresp and the rest: nothing to do
    }
  }
  socket.on('data', (chunk: Buffer) => {
    if (parse === undefined) {
      const at = readLightPackets(chunk, onPacket)
      if (at === chunk.length) return
      parse = parser({ protocolVersion: 4 })
      parse.on('packet', onPacket)
      parse.on('error', (err: Error) => {
        lastError = `protocol error: ${err.message}`
        socket.destroy()
      })
      chunk = chunk.subarray(at)
    }
    parse.parse(chunk)
  })
  socket.on('error', (err: Error & { code?: string }) => {
    lastError = err.code ?? err.message
    if (!connected) fail(new ConnectError('network', lastError))
  })
  socket.on('close', () => {
    leaveWheel?.()
    if (!connected) {
      fail(new ConnectError('network', 'closed before CONNACK'))
      return
    }
    const err = new Error(lastError)
    for (const w of pending.values()) w.reject(err)
    pending.clear()
    if (!closed) {
      closed = true
      onClose?.(lastError)
    }
  })
  socket.on('connect', () => {
    socket.write(encodeConnect(p))
  })

  const conn: DeviceConnection = {
    publish (topic, payload, qos) {
      if (socket.destroyed) return Promise.reject(new Error(lastError))
      if (qos === 0) {
        send({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false })
        return Promise.resolve()
      }
      return new Promise((resolve, reject) => {
        const id = messageId()
        pending.set(id, { resolve: () => resolve(), reject })
        send({ cmd: 'publish', topic, payload, qos: 1, messageId: id, dup: false, retain: false })
      })
    },
    subscribe (filters, qos) {
      if (socket.destroyed) return Promise.reject(new Error(lastError))
      return new Promise((resolve, reject) => {
        const id = messageId()
        pending.set(id, { resolve, reject })
        socket.write(encodeSubscribe(id, filters, qos))
      })
    },
    onMessage: (handler) => { onMessage = handler },
    onClose: (handler) => { onClose = handler },
    end () {
      closed = true
      socket.destroy()
    }
  }
})
