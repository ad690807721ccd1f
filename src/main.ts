// The composition root: the only module that wires factories from several parts together.
// Tests start the platform with startPlatform() exactly as `npm start` does, on port 0.

import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { createBrokerNode, DIRECT_BROKER_ID_SUFFIX, type BrokerNode } from './broker/create-broker-node.ts'
import { createConnectionLimits } from './broker/connection-limits.ts'
import { createCertificateLogins } from './broker/client-certificate.ts'
import { installFloodGuard } from './broker/flood-guard.ts'
import { limitPacketSize, maxPacketBytes, maxWebSocketMessageBytes } from './broker/packet-size-limit.ts'
import { loadTlsCredentials } from './broker/tls-credentials.ts'
import { startListeners, listenOn, type Listeners } from './broker/listeners.ts'
import { createClusterMember, type ClusterMember } from './cluster/cluster-member.ts'
import { createPresenceEvents, type PresenceEvents } from './cluster/presence-events.ts'
import { createClusterAssigner } from './cluster/node-assigner.ts'
import { createTrafficSampler } from './cluster/node-traffic.ts'
import { createRedisConnectionControl } from './cluster/redis-connection-control.ts'
import { createRedisTransport, type RedisTransport } from './cluster/redis-transport.ts'
import { loadConfig, type Config, type RedisTarget } from './config/load-config.ts'
import { createHttpApp } from './http/create-http-app.ts'
import { createKafka } from './kafka/kafka-client.ts'
import { shipperSettings } from './kafka/shipper-settings.ts'
import type { ReadinessReport } from './http/routes/health.ts'
import { createMetrics } from './metrics/metrics.ts'
import { createNetworkByteMeter } from './metrics/network-bytes.ts'
import { startRedisLatencyProbe } from './metrics/redis-latency-probe.ts'
import type { ConnectionControl, KickReason, KickTarget } from './registry/connection-control.ts'
import { createDeviceService, type DeviceService } from './registry/device-service.ts'
import { isPushlineError } from './shared/errors.ts'
import { createLogger } from './shared/logger.ts'
import { closeRedis, createRedis } from './shared/redis.ts'
import { createReplicaWait } from './shared/replica-wait.ts'
import { createStores } from './stores/create-stores.ts'
import { countReceipts } from './push/counted-receipt-store.ts'
import { createTokenGuard } from './registry/token-guard.ts'
import { openFileSpool, type FileSpool } from './uplink/file-spool.ts'
import { createPushStack } from './push/push-stack.ts'
import { openReceiptStream, type ReceiptStreamHandle } from './push/open-receipt-stream.ts'
import { createKafkaShipper, type KafkaShipper } from './uplink/kafka-shipper.ts'

const CLOSE_STEP_MS = 3000
/** How long a stop keeps shipping spooled uplinks to Kafka (within CLOSE_STEP_MS); the rest ships after the next start. */
const SHIPPER_DRAIN_MS = 2000

export interface Platform {
  readonly config: Config
  readonly http: FastifyInstance
  readonly httpPort: number
  /** Undefined in the api role. */
  readonly mqttPort: number | undefined
  readonly wsPort: number | undefined
  /** Set when TLS is configured (and not in the api role). */
  readonly mqttsPort: number | undefined
  readonly wssPort: number | undefined
  readonly broker: BrokerNode | undefined
  readonly devices: DeviceService | undefined
  readonly spool: FileSpool | undefined
  /** Undefined without PUSHLINE_KAFKA_BROKERS or in the api role. */
  readonly shipper: KafkaShipper | undefined
  /** Undefined with PUSHLINE_RECEIPTS_STREAM=false. */
  readonly receiptStream: ReceiptStreamHandle | undefined
  close (): Promise<void>
}

/** Opens every part in dependency order; close() closes them in reverse. A failed start closes what it had opened. */
export async function startPlatform (config: Config, logger: Logger): Promise<Platform> {
  const closers: Array<{ name: string, fn: () => Promise<unknown> }> = []
  const onClose = (name: string, fn: () => Promise<unknown>): void => { closers.push({ name, fn }) }
  let closing = false
  // Reverse order of opening. Each step is bounded: a part stuck on an unreachable Redis must not hold the rest.
  const close = async (): Promise<void> => {
    closing = true
    for (const { name, fn } of closers.reverse().splice(0)) {
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([fn(), new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('timed out')), CLOSE_STEP_MS) })])
      } catch (err) {
        logger.error({ event: 'close_failed', part: name, err: (err as Error).message }, 'a part failed to close')
      } finally {
        clearTimeout(timer)
      }
    }
  }

  try {
    const runsBroker = config.role !== 'api'
    const servesApi = config.role !== 'broker'
    const metrics = createMetrics({ nodeId: config.nodeId })

    let redis: Redis | undefined
    if (config.redis !== undefined) {
      const r = createRedis(config.redis, logger, `pushline:${config.nodeId}:main`)
      redis = r
      onClose('redis', () => closeRedis(r))
      const probe = startRedisLatencyProbe({ redis: r, metrics: metrics.redis, everyMs: config.heartbeatMs })
      onClose('redis latency probe', () => probe.close())
    }
    const prefix = config.redisPrefix
    let confirmWrites: (() => Promise<void>) | undefined
    if (config.redis !== undefined && servesApi && config.redisWaitReplicas > 0) {
      // WAIT blocks its connection: it gets one of its own, with room for the wait in its command timeout.
      const r = createRedis(config.redis, logger, `pushline:${config.nodeId}:wait`, { commandTimeoutMs: config.redisWaitTimeoutMs + 2000 })
      onClose('redis replica wait', () => closeRedis(r))
      const wait = createReplicaWait({
        redis: r,
        markerKey: `${prefix}replica-wait`,
        replicas: config.redisWaitReplicas,
        timeoutMs: config.redisWaitTimeoutMs,
        logger,
        onRound: ({ acked, wanted, ms }) => {
          metrics.redis.redisWaitSeconds.observe(ms / 1000)
          if (acked < wanted) metrics.redis.redisWaitTimeouts.inc()
        }
      })
      confirmWrites = () => wait.confirm()
    }
    const stores = createStores({
      redis,
      prefix,
      historyLimits: { maxMessages: config.historyMaxMessages, maxAgeMs: config.historyMaxAgeSeconds * 1000 },
      wrapReceipts: (store) => countReceipts(store, metrics.push.receipts)
    })
    const { devices: deviceStore, tokens: tokenStore, counters: counterStore, nodes: nodeRegistry, presence: presenceStore } = stores

    // The node's traffic counters, written into its registry record at each heartbeat (the spool opens below).
    const traffic = createTrafficSampler({ uplinks: metrics.broker.uplinks, downlinks: metrics.push.downlinks, kafkaRecords: metrics.uplink.kafkaRecords, spoolDepth: () => spool?.unshippedRecords ?? 0 })
    const receiptStream = config.receiptsStream ? await openReceiptStream({ config, logger, metrics: metrics.push, onClose }) : undefined
    if (receiptStream !== undefined) metrics.push.readReceiptStreamFrom(() => receiptStream.status())
    const pushStack = await createPushStack({ config, redis, confirmWrites, runsBroker, servesApi, logger: logger.child({ component: 'push' }), stores, metrics: metrics.push, onClose, receiptStream: receiptStream?.stream })

    let spool: FileSpool | undefined
    let shipper: KafkaShipper | undefined
    let broker: BrokerNode | undefined
    let listeners: Listeners | undefined

    let connections: ConnectionControl
    // Revoke, disable and delete close the device wherever it is; a takeover or an operator's kick only the
    // connection presence named (a newer one of the device stays).
    const kickLocal = (deviceId: string, reason: KickReason, target?: KickTarget): void => {
      if (target !== undefined) {
        if (target.nodeId === config.nodeId) member?.closeReplaced(deviceId, target.epoch, reason === 'kicked').catch(() => {})
        return
      }
      member?.markKicked(deviceId)
      if (reason !== 'deleted') {
        broker?.kickLocal(deviceId)
        return
      }
      // Every node forgets a deleted device's session; in cluster mode they share one store, so repeats find nothing.
      broker?.forgetDevice(deviceId).catch((err: Error) => {
        logger.warn({ event: 'forget_session_failed', deviceId, err: err.message }, 'could not drop a deleted device\'s session')
      })
    }
    if (redis !== undefined) {
      const subscriber = runsBroker ? createRedis(config.redis as RedisTarget, logger, `pushline:${config.nodeId}:kicks`) : undefined
      const control = createRedisConnectionControl({
        publisher: redis,
        subscriber,
        channel: `${prefix}kick`,
        kickLocal,
        logger
      })
      await control.start()
      onClose('connection control', async () => { await control.close(); if (subscriber !== undefined) await closeRedis(subscriber) })
      connections = control
    } else {
      connections = { kick: async (deviceId, reason, target) => { kickLocal(deviceId, reason, target) } }
    }

    const assigner = createClusterAssigner({ registry: nodeRegistry, counters: counterStore, strategy: config.assignmentStrategy })
    const devices = createDeviceService({
      devices: deviceStore,
      tokens: tokenStore,
      connections,
      presence: presenceStore,
      assigner,
      history: pushStack.history,
      ...(runsBroker && { forgetSession: async (deviceId: string) => { await broker?.forgetDevice(deviceId) } }),
      tokenTtlMs: config.tokenTtlSeconds * 1000,
      confirmWrites
    })

    let member: ClusterMember | undefined
    let presenceEvents: PresenceEvents | undefined
    let transport: RedisTransport | undefined
    if (runsBroker) {
      const m = createClusterMember({
        nodeId: config.nodeId,
        logger: logger.child({ component: 'cluster' }),
        registry: nodeRegistry,
        presence: presenceStore,
        heartbeatMs: config.heartbeatMs,
        weight: config.nodeWeight,
        drainRate: config.drainRate,
        traffic: traffic.sample,
        onPresence: (event) => { presenceEvents?.publish(event) },
        onTakeover: (deviceId, replaced) => {
          connections.kick(deviceId, 'takeover', { nodeId: replaced.nodeId, epoch: replaced.epoch }).catch((err: Error) => {
            logger.warn({ event: 'takeover_kick_failed', deviceId, err: err.message }, 'could not tell the other node to close the replaced connection')
          })
        },
        sessionExpiryMs: config.sessionExpirySeconds * 1000,
        counters: counterStore,
        onDrift: (drift) => { metrics.cluster.presenceDrift.set(drift) }
      })
      member = m
      // Registered before the broker opens, so it runs after the broker has closed its clients.
      onClose('cluster leave', () => m.leave())

      const spoolDir = join(resolve(config.dataDir), 'spool')
      const s = await openFileSpool({
        dir: spoolDir,
        fsync: config.spoolFsync,
        segmentBytes: config.spoolSegmentBytes,
        maxBytes: config.spoolMaxBytes,
        logger: logger.child({ component: 'spool' }),
        onFlush: (records, bytes) => { metrics.uplink.spoolRecords.inc(records); metrics.uplink.spoolBytes.inc(bytes) },
        onDrop: () => { metrics.uplink.uplinksDropped.inc({ reason: 'spool_full' }) },
        onWait: () => { metrics.uplink.spoolWaits.inc() }
      })
      spool = s
      onClose('spool', () => s.close())

      // The Kafka bridge tails the spool; it closes after the broker (no more appends) and before the spool.
      if (config.kafkaBrokers !== undefined) {
        const kafka = createKafka({
          brokers: config.kafkaBrokers,
          clientId: `pushline-${config.nodeId}`,
          logger,
          // Connects fail fast: the shipper's own back-off paces the attempts while Kafka is away.
          retry: { retries: 2, maxRetryTime: 5000 }
        })
        const k = createKafkaShipper({
          kafka,
          spool: s,
          logger: logger.child({ component: 'kafka-shipper' }),
          metrics: metrics.uplink,
          telemetryTopic: config.kafkaTelemetryTopic,
          topics: [
            { topic: config.kafkaTelemetryTopic, numPartitions: config.kafkaTelemetryPartitions, replicationFactor: config.kafkaReplicationFactor },
            { topic: config.kafkaPresenceTopic, numPartitions: config.kafkaPresencePartitions, replicationFactor: config.kafkaReplicationFactor }
          ],
          ...shipperSettings(config),
          deadLetterPath: join(spoolDir, 'dead-letter.jsonl')
        })
        shipper = k
        k.start()
        onClose('kafka shipper', () => k.close(SHIPPER_DRAIN_MS))
        const pe = createPresenceEvents({
          kafka,
          topic: config.kafkaPresenceTopic,
          logger: logger.child({ component: 'presence-events' }),
          onSent: (n) => metrics.uplink.presenceEvents.inc(n),
          onDropped: (n) => metrics.uplink.presenceEventsDropped.inc(n)
        })
        presenceEvents = pe
        onClose('presence events', () => pe.close(1000))
      }
      metrics.uplink.readBridgeFrom(() => {
        const k = shipper?.status()
        return { unshippedRecords: s.unshippedRecords, unshippedBytes: s.unshippedBytes, kafkaConnected: k?.connected, lagSeconds: k?.lagSeconds }
      })

      if (config.redis !== undefined) {
        const t = createRedisTransport({
          target: config.redis,
          prefix: config.redisPrefix,
          nodeId: config.nodeId,
          logger,
          onSubscriberGap: (gap) => {
            metrics.cluster.pubsubGaps.inc()
            metrics.cluster.pubsubGapSeconds.inc((gap.endedAt - gap.startedAt) / 1000)
            broker?.resendStored().then((n) => {
              logger.warn({ event: 'pubsub_gap_resent', messages: n }, 'resent stored QoS 1 messages to persistent sessions after a pub/sub gap')
            }, (err: Error) => { logger.error({ event: 'pubsub_gap_resend_failed', err: err.message }, 'resend after a pub/sub gap failed') })
          }
        })
        transport = t
        onClose('redis transport', () => t.close())
      }
      const b = await createBrokerNode({
        nodeId: config.nodeId,
        logger: logger.child({ component: 'broker' }),
        metrics: metrics.broker,
        allowAnonymous: config.allowAnonymous,
        maxPayloadBytes: config.maxPayloadBytes,
        aclDenyAction: config.aclDenyAction,
        checkToken: async (deviceId, token) => await devices.checkToken(deviceId, token),
        isRegisteredDevice: async (deviceId) => await deviceStore.get(deviceId) !== undefined,
        ...(config.tlsClientCaFile !== undefined && {
          certificates: createCertificateLogins({ idField: config.tlsClientIdField, check: async (deviceId, issuedAt) => await devices.checkCertificate(deviceId, issuedAt) })
        }),
        uplinks: s,
        uplinkRate: config.uplinkRatePerSecond === 0 ? undefined : { perSecond: config.uplinkRatePerSecond, burst: config.uplinkRateBurst },
        mq: transport?.mq,
        persistence: transport?.persistence,
        connectTimeoutMs: config.connectTimeoutMs,
        keepaliveMaxSeconds: config.keepaliveMaxSeconds,
        ...pushStack.brokerHooks
      })
      broker = b
      onClose('broker', () => b.close())
      await pushStack.startAgent(b)
      const bytes = createNetworkByteMeter()
      metrics.broker.readNetworkBytesFrom(bytes.totals)
      const flood = installFloodGuard(b.aedes, {
        subscriberBufferBytes: config.subscriberBufferBytes,
        deliveryQueueMax: config.deliveryQueueMax,
        exempt: (packet) => packet.brokerId?.endsWith(DIRECT_BROKER_ID_SUFFIX) === true,
        onDropped: (reason) => { metrics.broker.deliveriesDropped.inc({ reason }) },
        onPublisherPaused: () => { metrics.broker.publishersPaused.inc() }
      })
      metrics.broker.readDeliveryBacklogFrom(flood.backlog)
      const limits = createConnectionLimits({
        maxConnections: config.maxConnections,
        ratePerSecond: config.connectRatePerSecond,
        burst: config.connectRateBurst,
        refusalTimeoutMs: config.connectTimeoutMs,
        onRefused: (reason) => { metrics.broker.connectsRefused.inc({ reason }) }
      })
      const packetLimit = maxPacketBytes(config.maxPayloadBytes)
      const tls = config.tlsCertFile === undefined || config.tlsKeyFile === undefined
        ? undefined
        : {
            credentials: await loadTlsCredentials({
              certFile: config.tlsCertFile,
              keyFile: config.tlsKeyFile,
              caFile: config.tlsCaFile,
              clientCaFile: config.tlsClientCaFile,
              clientCrlFile: config.tlsClientCrlFile
            }),
            mqttsPort: config.mqttsPort,
            wssPort: config.wssPort
          }
      const l = await startListeners({
        host: config.host,
        mqttPort: config.mqttPort,
        wsPort: config.wsPort,
        connectTimeoutMs: config.connectTimeoutMs,
        maxMessageBytes: maxWebSocketMessageBytes(packetLimit),
        onMessageTooLarge: (limit) => {
          metrics.broker.uplinksRefused.inc({ reason: 'packet_too_large' })
          logger.warn({ event: 'packet_too_large', transport: 'websocket', limit }, 'WebSocket message over the size limit: connection closed before reading it')
        },
        tls,
        handle: limits.wrap((stream, req) => {
          bytes.track(stream, req)
          const client = flood.handle(stream, req)
          limitPacketSize(client, packetLimit, (announced) => {
            metrics.broker.uplinksRefused.inc({ reason: 'packet_too_large' })
            logger.warn({ event: 'packet_too_large', bytes: announced, limit: packetLimit }, 'packet over the size limit: connection closed before reading it')
          })
          return client
        })
      })
      listeners = l
      // Stop accepting before the broker closes its clients.
      onClose('listeners', () => l.close())
    }

    const readiness = async (): Promise<ReadinessReport> => {
      const checks: Record<string, string> = {}
      let ready = !closing
      checks.process = closing ? 'closing' : 'ok'
      if (transport !== undefined && !transport.subscriberReady()) {
        checks.pubsub = 'subscriber connection down'
        ready = false
      }
      if (member !== undefined) {
        const c = member.status()
        checks.cluster = c.draining ? 'draining' : c.heartbeatOk ? 'ok' : `heartbeat failing: ${c.lastError ?? 'not yet'}`
        if (c.draining || !c.heartbeatOk) ready = false
      }
      if (spool !== undefined) {
        // Reported, not a reason to be unready: in a Kafka outage every node's spool fills up, and refusing new
        // connections everywhere would also cut the devices off from their downlinks.
        checks.spool = spool.full ? `full: ${spool.unshippedBytes} bytes wait for Kafka, QoS 1 PUBACKs are held back` : 'ok'
      }
      if (shipper !== undefined) {
        // Kafka away is no reason to refuse devices: their uplinks spool until it is back.
        const k = shipper.status()
        checks.kafka = k.connected ? 'ok' : `unreachable, spooling ${k.lagRecords} uplinks: ${k.lastError ?? 'connecting'}`
      }
      const receiptShipper = receiptStream?.status().shipper
      if (receiptShipper !== undefined) {
        // Reported like the uplink bridge, never a reason to be unready.
        checks.receiptStream = receiptShipper.connected ? 'ok' : `Kafka unreachable, spooling ${receiptShipper.lagRecords} receipt records: ${receiptShipper.lastError ?? 'connecting'}`
      }
      if (redis !== undefined) {
        try {
          await redis.ping()
          checks.redis = 'ok'
        } catch (err) {
          checks.redis = (err as Error).message
          ready = false
        }
      }
      return { ready, checks }
    }

    const http = await createHttpApp({
      logger,
      nodeId: config.nodeId,
      adminKeys: config.adminKeys,
      provisioningKey: config.provisioningKey,
      metrics: metrics.registry,
      readiness,
      ...(servesApi && {
        registry: {
          devices,
          cluster: { registry: nodeRegistry, presence: presenceStore, heartbeatMs: config.heartbeatMs },
          guard: createTokenGuard({
            counters: counterStore,
            devicePerMinute: config.tokenRateDevicePerMinute,
            addressPerMinute: config.tokenRateAddressPerMinute,
            pullsPerMinute: config.messagesRateDevicePerMinute,
            maxFailures: config.secretMaxFailures,
            lockoutMs: config.secretLockoutSeconds * 1000
          }),
          push: pushStack.service
        }
      })
    })
    onClose('http', () => http.close())
    await http.ready()
    const httpPort = await listenOn(http.server, config.host, config.httpPort, 'PUSHLINE_HTTP_PORT')

    if (member !== undefined && broker !== undefined && listeners !== undefined) {
      const m = member
      await m.start(broker, {
        mqtt: `mqtt://${config.publicHost}:${listeners.mqttPort}`,
        ws: `ws://${config.publicHost}:${listeners.wsPort}/mqtt`,
        ...(listeners.mqttsPort !== undefined && { mqtts: `mqtts://${config.publicHost}:${listeners.mqttsPort}` }),
        ...(listeners.wssPort !== undefined && { wss: `wss://${config.publicHost}:${listeners.wssPort}/mqtt` }),
        http: `http://${config.publicHost}:${httpPort}`
      })
      onClose('cluster heartbeat', () => m.stop())
    }

    return {
      config,
      http,
      httpPort,
      mqttPort: listeners?.mqttPort,
      wsPort: listeners?.wsPort,
      mqttsPort: listeners?.mqttsPort,
      wssPort: listeners?.wssPort,
      broker,
      devices: servesApi ? devices : undefined,
      spool,
      shipper,
      receiptStream,
      close
    }
  } catch (err) {
    await close()
    throw err
  }
}

async function runMain (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    process.stderr.write(`pushline: ${(err as Error).message}\n`)
    process.exit(2)
  }
  const logger = createLogger({ level: config.logLevel, nodeId: config.nodeId })
  if (config.allowAnonymous) {
    logger.warn({ event: 'anonymous_on' }, 'PUSHLINE_ALLOW_ANONYMOUS is on: clients without credentials may use any topic but $SYS and registered devices\' topics. Development only.')
  }

  if (config.role !== 'api') {
    if (config.kafkaBrokers === undefined) {
      logger.info({ event: 'kafka_off' }, 'PUSHLINE_KAFKA_BROKERS is not set: uplinks stay in the local spool, which ships to Kafka once it is configured')
      if (config.spoolMaxBytes !== undefined) {
        logger.warn({ event: 'spool_bound_without_kafka', maxBytes: config.spoolMaxBytes }, 'PUSHLINE_SPOOL_MAX_BYTES is set without Kafka: once the spool holds that much, QoS 1 uplinks wait for good and QoS 0 uplinks are dropped')
      }
    } else {
      logger.info({ event: 'kafka_on', brokers: config.kafkaBrokers, topic: config.kafkaTelemetryTopic, spoolMaxBytes: config.spoolMaxBytes ?? 'unbounded' }, 'uplinks are bridged to Kafka through the local spool')
    }
  }

  let platform: Platform
  try {
    platform = await startPlatform(config, logger)
  } catch (err) {
    const message = isPushlineError(err) ? err.message : (err as Error).stack
    logger.fatal({ event: 'start_failed', err: (err as Error).message }, 'start failed')
    process.stderr.write(`pushline: ${message}\n`)
    process.exit(1)
  }

  const lines = [
    `pushline ${config.mode} mode, role ${config.role}, node ${config.nodeId}`,
    ...(platform.mqttPort === undefined ? [] : [`  MQTT over TCP        mqtt://${config.host}:${platform.mqttPort}`]),
    ...(platform.wsPort === undefined ? [] : [`  MQTT over WebSocket  ws://${config.host}:${platform.wsPort}/mqtt`]),
    ...(platform.mqttsPort === undefined ? [] : [`  MQTT over TLS        mqtts://${config.host}:${platform.mqttsPort}`]),
    ...(platform.wssPort === undefined ? [] : [`  MQTT over WSS        wss://${config.host}:${platform.wssPort}/mqtt`]),
    `  HTTP API             http://${config.host}:${platform.httpPort}  (OpenAPI UI at /docs)`,
    ...(platform.spool === undefined ? [] : [`  uplink spool         ${join(resolve(config.dataDir), 'spool')}`]),
    ...(platform.shipper === undefined ? [] : [`  Kafka                ${config.kafkaBrokers?.join(',') ?? ''}  (uplinks to topic ${config.kafkaTelemetryTopic})`]),
    ...(platform.receiptStream === undefined ? [] : [`  receipt records      ${platform.receiptStream.dir}${config.kafkaBrokers === undefined ? '' : `  (to topic ${config.kafkaReceiptsTopic})`}`]),
    ...(config.adminKeyGenerated ? [`  admin key (generated for this start; set PUSHLINE_ADMIN_KEYS to keep one): ${config.adminKeys[0] as string}`] : [])
  ]
  process.stdout.write(lines.join('\n') + '\n')

  let stoppedBy: NodeJS.Signals | undefined
  const grace = closeWithGrace({ delay: config.shutdownGraceMs, skip: [...STOP_SIGNALS] }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ event: 'fatal', err: err.message, stack: err.stack }, 'stopping after an uncaught error')
    logger.info({ event: 'stopping', signal: signal ?? stoppedBy }, 'stopping')
    await platform.close()
    logger.info({ event: 'stopped' }, 'stopped')
  })
  // `npm start` execs the node, so npm forwards a signal it gets to it; a terminal's Ctrl-C reaches both, and the
  // node gets the same signal twice. A repeat of the signal that started the stop is ignored (the grace period
  // bounds the stop); another signal ends the process at once.
  const onStopSignal = (signal: NodeJS.Signals): void => {
    if (stoppedBy === undefined) {
      stoppedBy = signal
      grace.close()
    } else if (signal !== stoppedBy) {
      logger.error({ event: 'stop_forced', signal }, `${signal} while stopping: exiting now`)
      process.exit(1)
    }
  }
  for (const signal of STOP_SIGNALS) process.on(signal, onStopSignal)
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const satisfies readonly NodeJS.Signals[]

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await runMain()
}
