// The one typed view of aedes's private fields and methods the platform relies on, and the start check that they
// are there. aedes keeps all of these off its type declarations; an upgrade may rename or remove any of them and
// nothing would fail to compile, so createBrokerNode runs checkAedesInternals once before it accepts a connection,
// and the process refuses to start with IOT_ERR_DEPENDENCY naming the field and the installed aedes version.
// Only the files of this folder cast aedes objects to these shapes; everything else goes through the accessors.
// docs/development.md, "Adaptations of dependencies", lists what uses each field and why.

import { Duplex, type Readable } from 'node:stream'
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes'
import { PushlineError } from '../../shared/errors.ts'

/** A client's delivery entry points: the mq callback of a subscription calls them with the routed packet. */
export type Deliver = (packet: DeliverablePacket, cb: () => void) => void

export interface DeliverablePacket {
  readonly cmd?: string
  readonly topic?: string
  readonly qos?: number
  readonly brokerId?: string
  readonly brokerCounter?: number
  readonly messageId?: number
}

/** mqtt-packet's parser as aedes holds it per client. */
export interface ParserInternals {
  parse (buf: Buffer): unknown
  /** The packet being read; length is -1 until its header has been read. */
  packet: { length: number }
  _parseString (): string | null
  /** The bytes not yet consumed of the packet being parsed (a `bl` list), and the read position in them. */
  _list: { readonly length: number, slice (start: number, end: number): Buffer, readonly constructor: { readonly BufferList?: new () => ParserInternals['_list'] } }
  _pos: number
  /** The CONNECT packet once parsed (mqtt-packet reads protocolVersion and bridgeMode from it afterwards). */
  settings: { readonly cmd?: string, readonly protocolVersion?: number, readonly bridgeMode?: boolean }
}

/** The private side of an aedes Client (lib/client.js). */
export interface ClientInternals {
  /** The next packet id aedes will give a QoS 1 packet to this client. */
  _nextId: number
  connackSent: boolean
  connected: boolean
  closed: boolean
  clean: boolean
  conn: Duplex
  /** Granted subscriptions by filter, with their QoS. */
  subscriptions: Record<string, { qos: number } | undefined>
  /** Highest brokerCounter delivered per origin broker id: a packet at or below it is dropped as a duplicate. */
  duplicates: Record<string, number | undefined>
  deliver0: Deliver
  deliverQoS: Deliver
  /** aedes's reader: reads the socket's next chunk once every packet of the current one is done. */
  _nextBatch: () => void
  _parser: ParserInternals
}

type PublishFn = (packet: PublishPacket, client: Client | null, done: (err?: Error) => void) => void

/** The private side of the Aedes broker object. */
export interface BrokerInternals {
  /** Registered clients by client id. */
  clients: Record<string, Client | undefined>
  persistence: SessionPersistence
  publish: PublishFn
  handle: Aedes['handle']
  /** Called by a client at the end of its close: uncounts it, drops the map entry under its id, announces it. */
  unregisterClient: (client: Client) => void
  /** Uncounts a client and drops the map entry under the id. */
  deleteClient: (clientId: string) => void
}

/** What a stored queue holds: a QoS 1 packet, with the id it went out with if it was sent. */
export interface QueuedPacket {
  readonly messageId?: number
  readonly brokerId?: string
  readonly brokerCounter?: number
}

/** A retained message as the persistence gives it back (aedes copies these fields into the packet it delivers). */
export interface RetainedPacket {
  readonly cmd: string
  readonly topic: string
  readonly payload: Buffer
  readonly qos: number
}

interface ClientRef { readonly id: string, readonly clean?: boolean, readonly brokerId?: string }

/**
 * The aedes-persistence methods aedes calls (the persistence interface of aedes-persistence's README), which
 * aedes's own type declarations leave out. The memory and the Redis persistence both have them.
 */
export interface SessionPersistence {
  addSubscriptions (client: Client, subs: Subscription[]): Promise<unknown>
  cleanSubscriptions (client: ClientRef): Promise<unknown>
  outgoingStream (client: ClientRef): AsyncIterable<QueuedPacket>
  outgoingUpdate (client: Client, packet: QueuedPacket): Promise<unknown>
  outgoingClearMessageId (client: ClientRef, packet: QueuedPacket & { readonly cmd?: string }): Promise<unknown>
  delWill (client: ClientRef): Promise<unknown>
  storeRetained (packet: { cmd: 'publish', topic: string, payload: Buffer, qos: 0, retain: true, dup: false }): Promise<unknown>
  /** The retained messages matching any of the filters, each once (aedes pipes the stream to the subscriber). */
  createRetainedStreamCombi (filters: string[]): Readable
}

export function clientInternals (client: Client): ClientInternals {
  return client as unknown as ClientInternals
}

export function brokerInternals (aedes: Aedes): BrokerInternals {
  return aedes as unknown as BrokerInternals
}

export function sessionPersistence (persistence: object): SessionPersistence {
  return persistence as unknown as SessionPersistence
}

// ---- accessors used outside this folder ----

/** The device's registered client on this node, closed or not. */
export function registeredClient (aedes: Aedes, clientId: string): Client | undefined {
  return brokerInternals(aedes).clients[clientId]
}

/** True once aedes has written the client's CONNACK. */
export function connackSent (client: Client): boolean {
  return clientInternals(client).connackSent
}

/** The QoS a client's subscription to exactly this filter was granted, if it has one. */
export function subscriptionQos (client: Client, filter: string): number | undefined {
  return clientInternals(client).subscriptions[filter]?.qos
}

/** The filters of a client's subscriptions (for a persistent session: the restored ones too). */
export function subscribedFilters (client: Client): string[] {
  return Object.keys(clientInternals(client).subscriptions)
}

/** Takes the client's next packet id as aedes would (1 to 65535, wrapping), so a packet written past aedes cannot collide with one of its own. */
export function takePacketId (client: Client): number {
  const c = clientInternals(client)
  const id = c._nextId
  c._nextId = id >= 65535 ? 1 : id + 1
  return id
}

/** Hands a packet to aedes's QoS delivery for this client (downgrade, session store, packet id, write); cb once written. */
export function deliverToClient (client: Client, packet: DeliverablePacket & object, cb: () => void): void {
  clientInternals(client).deliverQoS(packet, cb)
}

/** The client's socket (or WebSocket stream). */
export function connectionOf (client: Client): Duplex {
  return clientInternals(client).conn
}

// ---- the start check ----

type Kind = 'function' | 'object' | 'number' | 'boolean'

const BROKER_FIELDS: ReadonlyArray<readonly [string, Kind]> = [
  ['clients', 'object'], ['persistence', 'object'], ['publish', 'function'], ['handle', 'function'],
  ['unregisterClient', 'function'], ['deleteClient', 'function']
]
const PERSISTENCE_FIELDS: ReadonlyArray<readonly [string, Kind]> = [
  ['addSubscriptions', 'function'], ['cleanSubscriptions', 'function'], ['outgoingStream', 'function'],
  ['outgoingUpdate', 'function'], ['outgoingClearMessageId', 'function'], ['delWill', 'function'], ['storeRetained', 'function'],
  ['createRetainedStreamCombi', 'function']
]
const CLIENT_FIELDS: ReadonlyArray<readonly [string, Kind]> = [
  ['_nextId', 'number'], ['connackSent', 'boolean'], ['connected', 'boolean'], ['closed', 'boolean'], ['clean', 'boolean'],
  ['conn', 'object'], ['subscriptions', 'object'], ['duplicates', 'object'], ['deliver0', 'function'],
  ['deliverQoS', 'function'], ['_nextBatch', 'function'], ['_parser', 'object']
]
const PARSER_FIELDS: ReadonlyArray<readonly [string, Kind]> = [
  ['parse', 'function'], ['packet', 'object'], ['_parseString', 'function'], ['_list', 'object'], ['settings', 'object']
]

function missing (owner: string, target: unknown, fields: ReadonlyArray<readonly [string, Kind]>): string[] {
  if (typeof target !== 'object' || target === null) return [owner]
  const record = target as Record<string, unknown>
  const kindOf = (value: unknown): string => value === null ? 'null' : typeof value
  return fields.filter(([name, kind]) => kindOf(record[name]) !== kind).map(([name]) => `${owner}.${name}`)
}

/** The private fields (as `owner.field`) that the broker, its persistence or a client of it lacks. */
export function missingAedesInternals (broker: object, client: object): string[] {
  const b = broker as Partial<BrokerInternals>
  const c = client as Partial<ClientInternals>
  return [
    ...missing('aedes', broker, BROKER_FIELDS),
    ...(typeof b.persistence === 'object' ? missing('aedes.persistence', b.persistence, PERSISTENCE_FIELDS) : []),
    ...missing('client', client, CLIENT_FIELDS),
    ...(typeof c._parser === 'object' ? missing('client._parser', c._parser, PARSER_FIELDS) : []),
    ...(typeof c._parser?.packet === 'object' && typeof c._parser.packet?.length !== 'number' ? ['client._parser.packet.length'] : [])
  ]
}

/** A stream that never yields bytes and discards writes. */
class NullDuplex extends Duplex {
  override _read (): void {}
  override _write (_chunk: unknown, _enc: BufferEncoding, cb: () => void): void { cb() }
}

/** The fields a client of a bare broker of the same aedes lacks (on an in-process stream: nothing reaches the real broker). */
function missingOnProbe (aedes: Aedes): string[] {
  const Bare = aedes.constructor as typeof Aedes
  const client = new Bare().handle(new NullDuplex())
  try {
    return missingAedesInternals(aedes, client)
  } finally {
    client.close()
  }
}

/**
 * Throws IOT_ERR_DEPENDENCY naming every private field the platform relies on that this aedes lacks. `client`
 * defaults to a client of a bare broker of the same aedes class.
 */
export function checkAedesInternals (aedes: Aedes, client?: object): void {
  const absent = client === undefined ? missingOnProbe(aedes) : missingAedesInternals(aedes, client)
  if (absent.length === 0) return
  // aedes has a `version` getter that its type declarations leave out.
  const installed: unknown = Reflect.get(aedes, 'version')
  const version = typeof installed === 'string' ? installed : 'unknown'
  throw new PushlineError('IOT_ERR_DEPENDENCY',
    `aedes ${version} lacks ${absent.join(', ')}, which the platform's adaptations of aedes rely on (docs/development.md, "Adaptations of dependencies"): install the aedes version package.json pins`,
    { dependency: 'aedes', version, missing: absent })
}
