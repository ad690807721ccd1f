import { Aedes, type AedesOptions, type AuthenticateError, type Client, type ConnectPacket, type PublishPacket, type Subscription } from 'aedes'
import type { Logger } from 'pino'
import type { AclDenyAction } from '../config/settings.ts'
import type { TokenRecord } from '../stores/token-store.ts'
import type { Uplink, UplinkSink } from '../uplink/uplink.ts'
import { boundKeepalive } from './connection-limits.ts'
import type { BrokerMetrics, RefusalReason } from './broker-metrics.ts'
import type { CertificateLogins } from './client-certificate.ts'
import { adaptBroker, adaptConnections, adaptPersistence, type BrokerAdaptations } from './aedes/install-adaptations.ts'
import { brokerInternals, registeredClient } from './aedes/internals.ts'
import { maxPacketBytes } from './aedes/refuse-oversized-packets.ts'
import { resendStoredQueues } from './aedes/resend-stored-queue.ts'
import { serveConnections, type ConnectionSettings } from './serve-connections.ts'
import type { Listeners } from './listeners.ts'
import { createRateGate, type RateGate, type UplinkRateLimit } from './uplink-rate-limit.ts'
import { mayPublish, maySubscribe, type Identity } from './topic-acl.ts'
import { devicePublishRoute } from '../shared/topics.ts'
import { createCountedIds } from '../shared/counted-ids.ts'
import { createRequestGate } from '../shared/request-gate.ts'
import { isPushlineError } from '../shared/errors.ts'

const DEVICE_ID = /^[A-Za-z0-9_.-]{1,64}$/

export interface BrokerNodeOptions {
  readonly nodeId: string
  readonly logger: Logger
  readonly metrics: BrokerMetrics
  readonly allowAnonymous: boolean
  readonly maxPayloadBytes: number
  readonly aclDenyAction: AclDenyAction
  readonly checkToken: (deviceId: string, token: string) => Promise<TokenRecord | undefined>
  /** Whether a device with this id is registered: in anonymous mode its id and topics still need its token. */
  readonly isRegisteredDevice?: (deviceId: string) => Promise<boolean>
  /** Login with a client certificate (TLS listeners with a client CA): a CONNECT without password that presents one. */
  readonly certificates?: CertificateLogins
  readonly uplinks: UplinkSink
  /** Cluster transport (mqemitter-redis, aedes-persistence-redis); in memory when absent. */
  readonly mq?: AedesOptions['mq']
  readonly persistence?: object
  readonly heartbeatIntervalMs?: number
  /**
   * A device's application ack (a publish on devices/{id}/ack), consumed here and not routed. A QoS 1 ack is
   * acknowledged once the promise resolves; when it rejects, the connection is closed unacknowledged.
   */
  readonly onDeviceAck?: (deviceId: string, payload: Buffer) => Promise<void>
  /**
   * A PUBACK from a client, with the packet id it acknowledges (aedes's 'ack' event does not carry it). True when
   * the id was a push downlink's, written directly: the session store holds nothing for it and is not asked.
   */
  readonly onPuback?: (client: Client, messageId: number) => boolean
  /** Per-connection uplink rate; absent: no limit. */
  readonly uplinkRate?: UplinkRateLimit
  /**
   * Connects authenticated at once (their Redis checks in flight), connects that may wait for that and how long;
   * beyond them CONNACK 3 before any Redis command. Absent: no bound.
   */
  readonly connectGate?: { readonly concurrency: number, readonly queue: number, readonly maxWaitMs: number }
  /** A socket that has not sent CONNECT by then is closed. */
  readonly connectTimeoutMs?: number
  /** Longest keepalive; clients asking for none or more are held to it (connection-limits.ts). */
  readonly keepaliveMaxSeconds?: number
  /** The listeners and the bounds on their connections (flood guard, connection limits, TLS), opened by listen(). */
  readonly connections: ConnectionSettings
}

export interface BrokerNode {
  readonly aedes: Aedes
  /** Live sessions counted from client objects (aedes's own counter drifts: moscajs/aedes#1023). */
  liveSessions (): number
  /** The connected clients themselves. */
  liveClients (): Client[]
  /** While false (a draining node), new connections get CONNACK 3 and ask the registry for another node. */
  setAccepting (accepting: boolean): void
  /**
   * Sends every persistent session on this node what its stored queue holds (QoS 1 messages not yet
   * acknowledged), as after a reconnect. Used after a pub/sub gap; duplicates are allowed at QoS 1.
   */
  resendStored (): Promise<number>
  /** Deletes a stored (clean=false) session: its subscriptions, on every node, and its queued messages. */
  dropSession (clientId: string): Promise<void>
  /**
   * A deleted device: closes its connection if this node holds it, drops its stored session and the retained
   * message on its down topic, so that a device registered later with the same id starts clean.
   */
  forgetDevice (deviceId: string): Promise<void>
  /** Closes the device's connection if this node holds it. */
  kickLocal (deviceId: string): boolean
  /** The device's live client on this node, if any. */
  localClient (deviceId: string): Client | undefined
  /** Opens the MQTT listeners (TCP, WebSocket, and with TLS their secure twins). Call once the node's hooks are ready. */
  listen (): Promise<Listeners>
  close (): Promise<void>
}

/**
 * Packets whose brokerId ends with this are written to one client directly (push downlinks): their QoS 1 state is
 * kept by their sender, never in the session store, where nothing would ever delete it.
 */
export const DIRECT_BROKER_ID_SUFFIX = ':direct'

function refusal (returnCode: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  // AuthErrorCode is an ambient const enum, which isolatedModules cannot read: the literal is the same value.
  return Object.assign(new Error(message), { returnCode }) as unknown as AuthenticateError
}

/** The device id a `devices/{id}/...` topic names, if it is one. */
function deviceOfTopic (topic: string): string | undefined {
  if (!topic.startsWith('devices/')) return undefined
  const id = topic.split('/', 2)[1] ?? ''
  return DEVICE_ID.test(id) ? id : undefined
}

export async function createBrokerNode (opts: BrokerNodeOptions): Promise<BrokerNode> {
  const { logger, metrics } = opts
  /** The first of `ids` that is a registered device's. */
  const registeredAmong = async (ids: ReadonlyArray<string | undefined>): Promise<string | undefined> => {
    const isRegistered = opts.isRegisteredDevice
    if (isRegistered === undefined) return undefined
    for (const id of new Set(ids)) if (id !== undefined && DEVICE_ID.test(id) && await isRegistered(id)) return id
    return undefined
  }
  const identities = new WeakMap<Client, Identity>()
  // Every uplink gets both: a random part per process and a counter (src/shared/counted-ids.ts), no entropy per uplink.
  const newMsgId = createCountedIds('uuid')
  const newTraceId = createCountedIds('trace')
  const connectPackets = new WeakMap<Client, ConnectPacket>()
  // Publishes the hooks took care of (uplinks, acks, dropped ones): aedes must not route them to subscribers.
  const consumed = new WeakSet<PublishPacket>()
  const uplinkRate = opts.uplinkRate
  const rateGates = uplinkRate === undefined ? undefined : new WeakMap<Client, RateGate>()
  const newRateGate = (client: Client): RateGate => {
    const gate = createRateGate(uplinkRate as UplinkRateLimit)
    rateGates?.set(client, gate)
    return gate
  }
  // Faster than its rate: the hand-off (and with it the PUBACK and the next socket read) waits; nothing is
  // dropped. Application acks share the uplinks' rate: each costs a receipt update.
  const gated = (client: Client, handOff: () => void): void => {
    const gate = rateGates?.get(client) ?? (rateGates === undefined ? undefined : newRateGate(client))
    if (gate === undefined) return handOff()
    if (gate.pass(handOff)) metrics.uplinksThrottled.inc()
  }
  let accepting = true
  // In a reconnect storm every device connects at once: unbounded, the node's Redis queue outgrows the command
  // timeout and most checks fail after costing their full time (docs/limits.md, "Connects being authenticated").
  const authGate = createRequestGate({
    what: 'connects being authenticated',
    limit: opts.connectGate?.concurrency ?? 0,
    queue: opts.connectGate?.queue ?? 0,
    maxWaitMs: opts.connectGate?.maxWaitMs ?? 0,
    onChange: (inFlight, queued) => { metrics.connectsAuthenticating.set(inFlight); metrics.connectsQueued.set(queued) },
    onAbandoned: () => { metrics.connectsAbandoned.inc() }
  })
  // A connect whose client closes its connection before its check starts (while it waits in the queue) is dropped
  // without the check: nobody would read its CONNACK.
  const checked = async <T>(client: Client, check: () => Promise<T>): Promise<T> => {
    const gone = new AbortController()
    const conn = client.conn
    const abort = (): void => { gone.abort() }
    if (client.closed) abort(); else conn.once('close', abort)
    try {
      return await authGate.run(check, gone.signal)
    } finally {
      conn.off('close', abort)
    }
  }
  const isDirect = (packet: { brokerId?: string }): boolean => packet.brokerId?.endsWith(DIRECT_BROKER_ID_SUFFIX) === true
  const persistence = adaptPersistence({
    persistence: opts.persistence,
    granted: (client, sub) => {
      const identity = identities.get(client)
      return identity !== undefined && maySubscribe(identity, sub.topic)
    },
    isDirect,
    onPuback: opts.onPuback
  })
  // Installed after listen(), before the first connection (whose preConnect is the first use).
  const adapted: { broker?: BrokerAdaptations } = {}

  const aedes = new Aedes({
    id: opts.nodeId,
    mq: opts.mq,
    persistence,
    heartbeatInterval: opts.heartbeatIntervalMs ?? 5000,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    // The built-in (embedded mode) mqemitter: no delivery slots, whose overflow array is drained with an O(n)
    // shift and collapsed under a flood (docs/design.md); aedes/bound-deliveries-under-flood.ts bounds the backlog instead.
    concurrency: 0,
    drainTimeout: 15_000,
    // Devices often publish right after CONNECT, before an authenticate that waits on Redis has answered.
    queueLimit: 1000,

    preConnect (client, packet, done) {
      adapted.broker?.atPreConnect(client, packet)
      connectPackets.set(client, packet)
      if (opts.keepaliveMaxSeconds !== undefined) boundKeepalive(packet, opts.keepaliveMaxSeconds)
      done(null, true)
    },

    authenticate (client, username, password, done) {
      const packet = connectPackets.get(client)
      connectPackets.delete(client)
      const refuse = (reason: RefusalReason, code: 2 | 3 | 4 | 5, message: string): void => {
        metrics.connectsRefused.inc({ reason })
        logger.info({ event: 'connect_refused', reason, clientId: packet?.clientId.slice(0, 80) }, message)
        done(refusal(code, message), false)
      }
      if (packet === undefined) return refuse('server_unavailable', 3, 'connect packet missing')
      if (!accepting) return refuse('draining', 3, 'node is draining: ask the registry for another node')
      const clientId = packet.clientId
      const admit = (identity: Identity): void => {
        if (packet.will != null && !mayPublish(identity, packet.will.topic)) return refuse('not_authorized', 5, 'will topic not allowed')
        identities.set(client, identity)
        done(null, true)
      }
      const storeDown = (what: 'token' | 'certificate' | 'device') => (err: Error): void => {
        // aedes answers nothing to a closed client: done() only lets it forget the connect.
        if (err.name === 'AbortError') return done(refusal(3, 'connection closed before its check'), false)
        if (isPushlineError(err, 'IOT_ERR_BUSY')) return refuse(err.details?.reason === 'waited_too_long' ? 'wait_expired' : 'busy', 3, err.message)
        logger.warn({ event: `${what}_check_failed`, err: err.message }, `${what} check failed`)
        refuse('server_unavailable', 3, `${what} check failed: registry unavailable`)
      }

      const certificateLogin = password === undefined ? opts.certificates?.login(client, clientId) : undefined
      if (certificateLogin !== undefined) {
        if (!DEVICE_ID.test(clientId)) return refuse('bad_client_id', 2, 'client id must be a device id of 1 to 64 characters [A-Za-z0-9_.-]')
        if (username !== undefined && username !== clientId) return refuse('bad_credentials', 4, 'username must equal the client id')
        if ('refused' in certificateLogin) return refuse('bad_certificate', 5, certificateLogin.refused)
        checked(client, certificateLogin.check).then((result) => result.ok ? admit(result.identity) : refuse('bad_certificate', 5, result.message), storeDown('certificate'))
        return
      }

      if (username === undefined && password === undefined) {
        if (!opts.allowAnonymous) return refuse('anonymous_off', 5, 'credentials required')
        // [MQTT-3.1.3-8] an empty id with a persistent session can never be resumed.
        if (clientId === '' && !packet.clean) return refuse('bad_client_id', 2, 'empty client id needs a clean session')
        // A registered device's id, or a will on its topics, would let a client without its token take over its
        // session or plant messages for it.
        const ids = [clientId, ...(packet.will == null ? [] : [deviceOfTopic(packet.will.topic)])]
        checked(client, async () => await registeredAmong(ids)).then((registered) => {
          if (registered !== undefined) return refuse('not_authorized', 5, `${registered} is a registered device: connect with its token`)
          identities.set(client, { kind: 'anonymous' })
          done(null, true)
        }, storeDown('device'))
        return
      }
      if (!DEVICE_ID.test(clientId)) return refuse('bad_client_id', 2, 'client id must be a device id of 1 to 64 characters [A-Za-z0-9_.-]')
      if (username !== clientId || password === undefined) return refuse('bad_credentials', 4, 'username must equal the client id, password must be a token')

      const token = password.toString('utf8')
      checked(client, () => opts.checkToken(clientId, token)).then((record) => {
        if (record === undefined) return refuse('bad_credentials', 4, 'invalid or expired token')
        admit({ kind: 'device', deviceId: clientId, groups: record.groups })
      }, storeDown('token'))
    },

    authorizePublish (client, packet, done) {
      // Keep aedes's own refusal: a $SYS publish could kick other devices cluster-wide.
      if (packet.topic.startsWith('$')) return done(new Error('$ topics are reserved'))
      // client is null for wills of dead nodes' devices, which were checked at CONNECT.
      const identity = client === null ? undefined : identities.get(client)
      if (client === null || identity === undefined) return done(null)

      if (packet.payload.length > opts.maxPayloadBytes) {
        metrics.uplinksRefused.inc({ reason: 'too_large' })
        logger.warn({ event: 'publish_too_large', clientId: client.id, topic: packet.topic, bytes: packet.payload.length }, 'payload over limit, dropped')
        consumed.add(packet)
        return done(null)
      }
      if (identity.kind === 'anonymous') {
        const target = deviceOfTopic(packet.topic)
        if (target === undefined) return done(null)
        registeredAmong([target]).then((registered) => {
          if (registered === undefined) return done(null)
          metrics.aclDenied.inc({ op: 'publish' })
          logger.info({ event: 'acl_denied', op: 'publish', clientId: client.id, topic: packet.topic }, 'anonymous publish on a registered device\'s topic refused')
          if (opts.aclDenyAction === 'disconnect') return done(new Error('topic not allowed'))
          consumed.add(packet)
          done(null)
        }, (err: Error) => { done(err) })
        return
      }

      const route = devicePublishRoute(identity.deviceId, packet.topic)
      if (route === undefined) {
        metrics.aclDenied.inc({ op: 'publish' })
        logger.info({ event: 'acl_denied', op: 'publish', clientId: client.id, topic: packet.topic }, 'publish refused')
        if (opts.aclDenyAction === 'disconnect') return done(new Error('topic not allowed'))
        consumed.add(packet)
        return done(null)
      }
      consumed.add(packet)
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
      if (route.type === 'ack') {
        const deviceId = identity.deviceId
        return gated(client, () => {
          const recorded = opts.onDeviceAck?.(deviceId, payload)
          if (recorded === undefined) return done(null)
          // QoS 0 has no PUBACK to hold back: such an ack that fails is lost, as QoS 0 allows.
          recorded.then(() => done(null), (err: Error) => {
            if (packet.qos === 0) return done(null)
            logger.warn({ event: 'device_ack_failed', clientId: client.id, err: err.message }, 'application ack not recorded, closing connection')
            done(err)
          })
        })
      }

      // The hand-off happens here, before aedes writes the PUBACK (docs/design.md, "Uplinks"): a QoS 1 uplink is
      // acknowledged only once the sink holds it. A failed hand-off closes the connection; the device resends.
      const uplink: Uplink = {
        msgId: newMsgId(),
        deviceId: identity.deviceId,
        topic: packet.topic,
        kind: route.kind,
        qos: packet.qos,
        nodeId: opts.nodeId,
        receivedAt: Date.now(),
        traceId: newTraceId(),
        payload
      }
      const handOff = (): void => {
        // A device that went away while its uplink was held back sends an unacknowledged QoS 1 uplink again.
        if (packet.qos > 0 && client.closed) return done(new Error('connection closed'))
        opts.uplinks.append(uplink).then(() => {
          metrics.countUplink(route.kind, packet.qos)
          if (logger.isLevelEnabled('debug')) logger.debug({ event: 'uplink', traceId: uplink.traceId, msgId: uplink.msgId, deviceId: uplink.deviceId, topic: uplink.topic, qos: uplink.qos }, 'uplink spooled')
          done(null)
        }, (err: Error) => {
          metrics.uplinksRefused.inc({ reason: 'sink_error' })
          logger.error({ event: 'uplink_sink_failed', clientId: client.id, traceId: uplink.traceId, msgId: uplink.msgId, err: err.message }, 'uplink not stored, closing connection')
          done(err)
        })
      }
      gated(client, handOff)
    },

    authorizeSubscribe (client, sub: Subscription, done) {
      const identity = identities.get(client)
      if (identity === undefined || !maySubscribe(identity, sub.topic)) {
        metrics.aclDenied.inc({ op: 'subscribe' })
        logger.info({ event: 'acl_denied', op: 'subscribe', clientId: client.id, topic: sub.topic }, 'subscription refused')
        return done(null, null)
      }
      done(null, sub)
    }
  })

  // Registered (authenticated) and not closed: a client between registration and CONNACK counts, as it does in presence.
  // Kept from aedes's own events rather than copied out of its client map on every call: heartbeat, reconcile and
  // metrics each did that, 7% of a node's CPU at 16,000 clients. A client closed without a clientDisconnect
  // (moscajs/aedes#1023) is dropped when next seen.
  const registered = new Set<Client>()
  const liveClients = (): Client[] => {
    const out: Client[] = []
    for (const c of registered) if (c.closed) registered.delete(c); else out.push(c)
    return out
  }
  const liveSessions = (): number => liveClients().length
  aedes.on('client', (c) => { registered.add(c); metrics.connects.inc() })
  aedes.on('clientDisconnect', (c) => { registered.delete(c) })
  // Counted when Prometheus scrapes, not on every connect: walking every client per event made connecting
  // n devices cost n² (70% of broker CPU in bench/connect-rate.ts).
  metrics.readConnectionsFrom(liveSessions)
  aedes.on('clientError', (client, err) => { logger.debug({ event: 'client_error', clientId: client.id, err: err.message }, 'client error') })
  aedes.on('connectionError', (_client, err) => { logger.debug({ event: 'connection_error', err: err.message }, 'connection error') })
  // Persistence errors are emitted here; without a listener they would crash the process.
  ;(aedes as NodeJS.EventEmitter).on('error', (err: Error) => { logger.error({ event: 'broker_error', err: err.message }, 'broker error') })

  await aedes.listen()
  adapted.broker = adaptBroker(aedes, {
    nodeId: opts.nodeId,
    // Asked once per packet: the answer forgets it, so the set holds only the packets between their hook and their
    // routing instead of every uplink of the last seconds until the collector clears them.
    consumed: (packet) => consumed.delete(packet),
    onMalformedString: (client) => {
      metrics.uplinksRefused.inc({ reason: 'malformed_string' })
      logger.info({ event: 'malformed_string', clientId: client.id }, 'a string in a packet is not well-formed UTF-8 or holds U+0000: connection closed (MQTT 3.1.1, 1.5.3)')
    }
  })
  const packetLimit = maxPacketBytes(opts.maxPayloadBytes)
  const connections = adaptConnections(aedes, {
    subscriberBufferBytes: opts.connections.subscriberBufferBytes,
    deliveryQueueMax: opts.connections.deliveryQueueMax,
    exempt: isDirect,
    onDropped: (reason) => { metrics.deliveriesDropped.inc({ reason }) },
    onPublisherPaused: () => { metrics.publishersPaused.inc() },
    maxPacketBytes: packetLimit,
    onPacketTooLarge: (announced) => {
      metrics.uplinksRefused.inc({ reason: 'packet_too_large' })
      logger.warn({ event: 'packet_too_large', bytes: announced, limit: packetLimit }, 'packet over the size limit: connection closed before reading it')
    }
  })
  metrics.readDeliveryBacklogFrom(connections.flood.backlog)

  // The same object aedes uses, so the adaptations installed on it apply.
  const sessions = brokerInternals(aedes).persistence
  // aedes-persistence's subscription broadcast keeps one waiter per client and topic, so two removals of one
  // client's subscriptions running at once in a process leave the first waiting forever (a device deleted
  // through the API of a process that also receives the deletion's kick did that). One drop per client at a time.
  const drops = new Map<string, Promise<void>>()
  function dropSession (clientId: string): Promise<void> {
    const run = async (): Promise<void> => { await dropSessionNow(clientId) }
    // After the previous drop, whether it worked or not.
    const next = (drops.get(clientId) ?? Promise.resolve()).then(run, run)
    drops.set(clientId, next)
    const forget = (): void => { if (drops.get(clientId) === next) drops.delete(clientId) }
    next.then(forget, forget)
    return next
  }
  async function dropSessionNow (clientId: string): Promise<void> {
    const client = { id: clientId, clean: false }
    await sessions.cleanSubscriptions(client)
    // The Redis store deletes the queue with the last subscription; the memory one keeps it until each packet is
    // cleared by its id (queued packets may share an undefined id: each call removes one).
    for await (const packet of sessions.outgoingStream(client)) await sessions.outgoingClearMessageId(client, packet)
  }

  return {
    aedes,
    liveSessions,
    liveClients,
    setAccepting (value) { accepting = value },
    dropSession,
    async forgetDevice (deviceId) {
      registeredClient(aedes, deviceId)?.close()
      await dropSession(deviceId)
      // An empty retained payload deletes the retained message (MQTT 3.1.1, 3.3.1.3), in both stores.
      await sessions.storeRetained({ cmd: 'publish', topic: `devices/${deviceId}/down`, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false })
    },
    async resendStored () {
      return await resendStoredQueues(aedes, liveClients().filter((c) => !c.clean && c.connected))
    },
    localClient (deviceId) {
      const c = registeredClient(aedes, deviceId)
      return c === undefined || c.closed ? undefined : c
    },
    kickLocal (deviceId) {
      const c = registeredClient(aedes, deviceId)
      if (c === undefined) return false
      c.close()
      return true
    },
    async listen () {
      return await serveConnections({
        settings: opts.connections,
        connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
        maxPacketBytes: packetLimit,
        handle: connections.handle,
        logger,
        metrics
      })
    },
    close () {
      return new Promise<void>((resolve) => aedes.close(() => resolve()))
    }
  }
}
