// A connection to an in-process aedes without a socket, in the style of aedes's own tests: `conn` is the stream
// handed to aedes.handle(); the test writes raw MQTT packets (built with mqtt-packet) into it and reads aedes's
// answers, parsed, from `received`.

import { Duplex } from 'node:stream'
import { generate, parser as packetParser, type Packet } from 'mqtt-packet'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import aedesPersistence from 'aedes-persistence'
import { bounded } from './eventually.ts'

export interface PacketPipe {
  /** The broker's side of the connection. */
  readonly conn: Duplex
  readonly client: Client
  /** Every packet aedes wrote, in order. */
  readonly received: Packet[]
  /** Writes a packet (or raw bytes) as the device would. */
  send (packet: Packet | Buffer): void
  /** Resolves the next packet with this cmd written after the ones already returned by next(). */
  next (cmd: Packet['cmd'], ms?: number): Promise<Packet>
  /** Resolves once the broker's side has closed. */
  closed (ms?: number): Promise<void>
  /** While frozen, aedes's writes are never completed (a device that stopped reading): they pile up in writableLength. */
  freeze (): void
  /** Ends the connection from the device's side. */
  end (): void
}

export function openPacketPipe (aedes: Pick<Aedes, 'handle'>): PacketPipe {
  const received: Packet[] = []
  const waiters: Array<() => void> = []
  let frozen = false
  const parser = packetParser({ protocolVersion: 4 })
  parser.on('packet', (p: Packet) => {
    received.push(p)
    for (const wake of waiters.splice(0)) wake()
  })
  const conn = new Duplex({
    read () {},
    write (chunk: Buffer, _enc, cb) {
      if (frozen) return
      parser.parse(chunk)
      cb()
    }
  })
  const isClosed = new Promise<void>((resolve) => { conn.once('close', () => { resolve() }) })
  const client = aedes.handle(conn)
  let cursor = 0
  return {
    conn,
    client,
    received,
    send (packet) { conn.push(Buffer.isBuffer(packet) ? packet : generate(packet)) },
    async next (cmd, ms = 30_000) {
      return await bounded(`a ${cmd} packet`, new Promise<Packet>((resolve) => {
        const look = (): void => {
          for (; cursor < received.length; cursor++) {
            const p = received[cursor] as Packet
            if (p.cmd === cmd) {
              cursor++
              resolve(p)
              return
            }
          }
          waiters.push(look)
        }
        look()
      }), ms)
    },
    async closed (ms = 30_000) { await bounded('the connection to close', isClosed, ms) },
    freeze () { frozen = true },
    end () { conn.push(null) }
  }
}

export function connectPacket (clientId: string, opts: { clean?: boolean, will?: { topic: string, payload: Buffer } } = {}): Packet {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: opts.clean ?? true,
    keepalive: 0,
    clientId,
    ...(opts.will !== undefined && { will: { topic: opts.will.topic, payload: opts.will.payload, qos: 0, retain: false } })
  }
}

export function subscribePacket (messageId: number, filters: ReadonlyArray<readonly [string, 0 | 1]>): Packet {
  return { cmd: 'subscribe', messageId, subscriptions: filters.map(([topic, qos]) => ({ topic, qos })) }
}

/** aedes's in-memory session store (aedes-persistence's module.exports is the factory; see install-adaptations.ts). */
export function memoryPersistence (): object {
  return (aedesPersistence as unknown as () => object)()
}

/** Records the arguments of every call of `method` on `target`, then calls through. */
export function spyOn (target: object, method: string): unknown[][] {
  const calls: unknown[][] = []
  const record = target as Record<string, (...args: unknown[]) => unknown>
  const original = (record[method] as (...args: unknown[]) => unknown).bind(target)
  record[method] = (...args) => {
    calls.push(args)
    return original(...args)
  }
  return calls
}

/** Starts an aedes on `persistence`; closed when the test ends. */
export async function startAedes (t: { after: (fn: () => Promise<void>) => void }, opts: AedesOptions = {}): Promise<Aedes> {
  const aedes = new Aedes(opts)
  await aedes.listen()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => { resolve() }) }))
  return aedes
}
