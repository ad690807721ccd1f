// Installs every adaptation of aedes's internals, in order, and lists them. Each file of this folder replaces one
// private thing of aedes (or of Node for aedes's sake); its first comment says what, why, and which public hook
// upstream lacks. internals.ts is the typed view of the private fields they use, checked once at start.
// docs/development.md, "Adaptations of dependencies", has the same list with the reason for each.

import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Aedes, Client, ConnectPacket, PublishPacket, Subscription } from 'aedes'
import aedesPersistence from 'aedes-persistence'
import { checkAedesInternals, type QueuedPacket } from './internals.ts'
import { installFloodGuard, type FloodGuard, type FloodGuardOptions } from './bound-deliveries-under-flood.ts'
import { discardQueueWithSession } from './discard-queue-with-clean-session.ts'
import { createConnackGate } from './hold-deliveries-until-connack.ts'
import { keepDirectDownlinksOutOfStore } from './keep-direct-downlinks-out-of-session-store.ts'
import { refuseMalformedStrings } from './refuse-malformed-utf8-strings.ts'
import { limitPacketSize } from './refuse-oversized-packets.ts'
import { routeOnlyUnhandledPublishes } from './route-only-unhandled-publishes.ts'
import { installEmptyQueueShortcut } from './skip-empty-queue-pipeline.ts'
import { skipIdleRoundTrips } from './skip-idle-persistence-round-trips.ts'
import { skipDisabledParserDebug } from './skip-disabled-parser-debug.ts'
import { buildParsersOnPlainLists, releaseConnectPacket } from './slim-client-parser.ts'
import { guardSubscriptions } from './store-granted-filters-once.ts'
import { unregisterOnlyTheRegisteredClient } from './unregister-only-the-registered-client.ts'
import { writePubacksOfATickAtOnce } from './write-pubacks-of-a-tick-at-once.ts'

export interface Adaptation {
  readonly file: string
  /** The private thing it replaces or wraps. */
  readonly touches: string
  readonly kind: 'bug fix' | 'speed-up' | 'memory' | 'bound'
}

/**
 * Every adaptation, in the order it is installed. resend-stored-queue.ts is a call, not installed. The first is
 * installed by the Redis transport on the session store it builds, the one store it applies to.
 */
export const AEDES_ADAPTATIONS: readonly Adaptation[] = [
  { file: 'look-up-retained-in-one-round-trip.ts', touches: 'persistence.createRetainedStreamCombi (Redis persistence only, installed where src/cluster/redis-transport.ts builds it)', kind: 'speed-up' },
  { file: 'skip-empty-queue-pipeline.ts', touches: 'node:stream pipeline (process-wide)', kind: 'speed-up' },
  { file: 'discard-queue-with-clean-session.ts', touches: 'persistence.cleanSubscriptions (memory persistence only)', kind: 'bug fix' },
  { file: 'skip-idle-persistence-round-trips.ts', touches: 'persistence.delWill, persistence.outgoingStream', kind: 'speed-up' },
  { file: 'store-granted-filters-once.ts', touches: 'persistence.addSubscriptions', kind: 'bug fix' },
  { file: 'keep-direct-downlinks-out-of-session-store.ts', touches: 'persistence.outgoingUpdate, persistence.outgoingClearMessageId', kind: 'speed-up' },
  { file: 'route-only-unhandled-publishes.ts', touches: 'aedes.publish', kind: 'bug fix' },
  { file: 'unregister-only-the-registered-client.ts', touches: 'aedes.unregisterClient, aedes.deleteClient', kind: 'bug fix' },
  { file: 'hold-deliveries-until-connack.ts', touches: 'client.deliver0, client.deliverQoS', kind: 'bug fix' },
  { file: 'slim-client-parser.ts', touches: 'mqtt-packet Parser.prototype._resetState (process-wide), client._parser.settings', kind: 'memory' },
  { file: 'skip-disabled-parser-debug.ts', touches: 'mqtt-packet Parser.prototype methods (process-wide), by a second load of parser.js with a silent debug', kind: 'speed-up' },
  { file: 'write-pubacks-of-a-tick-at-once.ts', touches: 'mqtt-packet writeToStream export (process-wide)', kind: 'speed-up' },
  { file: 'refuse-malformed-utf8-strings.ts', touches: 'client._parser._parseString', kind: 'bug fix' },
  { file: 'bound-deliveries-under-flood.ts', touches: 'client.deliver0, client._nextBatch, connection read()', kind: 'bound' },
  { file: 'refuse-oversized-packets.ts', touches: 'client._parser.parse', kind: 'bound' }
]

// aedes-persistence is CommonJS whose module.exports is the factory; its types describe an ES default export,
// which NodeNext resolution reads as the module object.
const createMemoryPersistence = aedesPersistence as unknown as () => object

export interface PersistenceAdaptationOptions {
  /** The cluster's session store (aedes-persistence-redis); the in-memory one when absent. */
  readonly persistence?: object
  /** Whether a filter of a SUBSCRIBE was granted to the client (only those are stored). */
  readonly granted: (client: Client, sub: Subscription) => boolean
  /** A packet written directly to one client, whose QoS 1 state its sender keeps. */
  readonly isDirect: (packet: QueuedPacket) => boolean
  readonly onPuback?: (client: Client, messageId: number) => boolean
}

/** The session store aedes is built with: the given one (or a memory one) with the store adaptations installed. */
export function adaptPersistence (opts: PersistenceAdaptationOptions): object {
  installEmptyQueueShortcut()
  const base = opts.persistence ?? discardQueueWithSession(createMemoryPersistence())
  return keepDirectDownlinksOutOfStore(guardSubscriptions(skipIdleRoundTrips(base), opts.granted), { isDirect: opts.isDirect, onPuback: opts.onPuback })
}

export interface BrokerAdaptationOptions {
  readonly nodeId: string
  /** Publishes the broker node's hooks took care of: acknowledged, not routed. Asked once per publish (aedes routes each once). */
  readonly consumed: (packet: PublishPacket) => boolean
  /** A client sent a string that is not well-formed UTF-8 or holds U+0000; its connection is being closed. */
  readonly onMalformedString: (client: Client) => void
}

export interface BrokerAdaptations {
  /** From aedes's preConnect hook: the CONNECT is parsed, the session is not restored yet. */
  atPreConnect (client: Client, packet: ConnectPacket): void
}

/**
 * Checks aedes's internals (throws IOT_ERR_DEPENDENCY) and installs the broker and per-client adaptations.
 * Call after aedes.listen() (which sets the persistence) and before the first connection.
 */
export function adaptBroker (aedes: Aedes, opts: BrokerAdaptationOptions): BrokerAdaptations {
  checkAedesInternals(aedes)
  routeOnlyUnhandledPublishes(aedes, { nodeId: opts.nodeId, consumed: opts.consumed })
  unregisterOnlyTheRegisteredClient(aedes)
  const gate = createConnackGate(aedes)
  buildParsersOnPlainLists()
  skipDisabledParserDebug()
  writePubacksOfATickAtOnce()
  const handle = aedes.handle
  aedes.handle = (conn, req) => {
    const client = handle(conn, req)
    refuseMalformedStrings(client, () => { opts.onMalformedString(client) })
    return client
  }
  return {
    atPreConnect (client, packet) {
      releaseConnectPacket(client)
      gate.hold(client, packet)
    }
  }
}

export interface ConnectionAdaptationOptions extends FloodGuardOptions {
  /** Largest packet (remaining length) a client may announce. */
  readonly maxPacketBytes: number
  readonly onPacketTooLarge: (announced: number) => void
}

export interface ConnectionAdaptations {
  /** aedes's connection handler with the flood bounds and the packet-size limit installed on each new client. */
  handle (stream: Duplex, req?: IncomingMessage): Client
  readonly flood: FloodGuard
}

/** The bounds installed on the listeners' connections (after adaptBroker). */
export function adaptConnections (aedes: Aedes, opts: ConnectionAdaptationOptions): ConnectionAdaptations {
  const flood = installFloodGuard(aedes, opts)
  return {
    flood,
    handle (stream, req) {
      const client = flood.handle(stream, req)
      limitPacketSize(client, opts.maxPacketBytes, opts.onPacketTooLarge)
      return client
    }
  }
}
