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
import { createLocalNode, type LocalNode } from './cluster/local-node.ts'
import { createClusterAssigner } from './cluster/node-assigner.ts'
import { createTrafficSampler } from './cluster/node-traffic.ts'
import { openConnectionControl } from './cluster/open-connection-control.ts'
import { createRedisTransport, type RedisTransport } from './cluster/redis-transport.ts'
import { loadConfig, type Config } from './config/load-config.ts'
import { createHttpApp } from './http/create-http-app.ts'
import { createReadiness } from './http/readiness.ts'
import { createMetrics, type Metrics } from './metrics/metrics.ts'
import { createNetworkByteMeter } from './metrics/network-bytes.ts'
import { startRedisLatencyProbe } from './metrics/redis-latency-probe.ts'
import type { ConnectionControl } from './registry/connection-control.ts'
import { createDeviceService, type DeviceService } from './registry/device-service.ts'
import { createTokenGuard } from './registry/token-guard.ts'
import { countReceipts } from './push/counted-receipt-store.ts'
import { openReceiptStream, type ReceiptStreamHandle } from './push/open-receipt-stream.ts'
import { createPushStack, type PushStack } from './push/push-stack.ts'
import { createClosers } from './shared/closers.ts'
import { isPushlineError } from './shared/errors.ts'
import { createLogger } from './shared/logger.ts'
import { openReplicaWait } from './shared/open-replica-wait.ts'
import { closeRedis, createRedis } from './shared/redis.ts'
import { createStores, type Stores } from './stores/create-stores.ts'
import type { FileSpool } from './uplink/file-spool.ts'
import type { KafkaShipper } from './uplink/kafka-shipper.ts'
import { openUplinkBridge, type UplinkBridge } from './uplink/open-uplink-bridge.ts'

/** The bound of each part's close (src/shared/closers.ts); the bridges' drains fit within it. */
const CLOSE_STEP_MS = 3000

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
  const closers = createClosers({ logger, stepMs: CLOSE_STEP_MS })
  const onClose = closers.add
  try {
    const runsBroker = config.role !== 'api'
    const servesApi = config.role !== 'broker'
    const metrics = createMetrics({ nodeId: config.nodeId })
    const redis = config.redis === undefined ? undefined : createRedis(config.redis, logger, `pushline:${config.nodeId}:main`)
    if (redis !== undefined) {
      onClose('redis', () => closeRedis(redis))
      const probe = startRedisLatencyProbe({ redis, metrics: metrics.redis, everyMs: config.heartbeatMs })
      onClose('redis latency probe', () => probe.close())
    }
    const confirmWrites = servesApi ? openReplicaWait({ config, logger, metrics: metrics.redis, onClose }) : undefined
    const stores = createStores({
      redis,
      prefix: config.redisPrefix,
      historyLimits: { maxMessages: config.historyMaxMessages, maxAgeMs: config.historyMaxAgeSeconds * 1000 },
      wrapReceipts: (store) => countReceipts(store, metrics.push.receipts)
    })
    const receiptStream = config.receiptsStream ? await openReceiptStream({ config, logger, metrics: metrics.push, onClose }) : undefined
    const pushStack = await createPushStack({ config, redis, confirmWrites, runsBroker, servesApi, logger: logger.child({ component: 'push' }), stores, metrics: metrics.push, onClose, receiptStream: receiptStream?.stream })

    const local = createLocalNode({ nodeId: config.nodeId, logger })
    const connections = await openConnectionControl({ config, redis, runsBroker, logger, kickLocal: local.kick, onClose })
    const devices = createDeviceService({
      devices: stores.devices,
      tokens: stores.tokens,
      connections,
      presence: stores.presence,
      assigner: createClusterAssigner({ registry: stores.nodes, counters: stores.counters, strategy: config.assignmentStrategy }),
      history: stores.history,
      ...(runsBroker && { forgetSession: local.forgetSession }),
      tokenTtlMs: config.tokenTtlSeconds * 1000,
      confirmWrites
    })
    const node = runsBroker ? await startBrokerRole({ config, logger, metrics, onClose, redis, stores, devices, connections, local, pushStack }) : undefined

    const http = await createHttpApp({
      logger,
      nodeId: config.nodeId,
      adminKeys: config.adminKeys,
      provisioningKey: config.provisioningKey,
      metrics: metrics.registry,
      readiness: createReadiness({
        closing: () => closers.closing,
        redis,
        transport: node?.transport,
        member: node?.member,
        spool: node?.bridge.spool,
        shipper: node?.bridge.shipper,
        receiptShipper: () => receiptStream?.status().shipper
      }),
      ...(servesApi && {
        registry: {
          devices,
          cluster: { registry: stores.nodes, presence: stores.presence, heartbeatMs: config.heartbeatMs },
          guard: createTokenGuard({
            counters: stores.counters,
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

    if (node !== undefined) {
      const { member, broker, listeners } = node
      await member.start(broker, {
        mqtt: `mqtt://${config.publicHost}:${listeners.mqttPort}`,
        ws: `ws://${config.publicHost}:${listeners.wsPort}/mqtt`,
        ...(listeners.mqttsPort !== undefined && { mqtts: `mqtts://${config.publicHost}:${listeners.mqttsPort}` }),
        ...(listeners.wssPort !== undefined && { wss: `wss://${config.publicHost}:${listeners.wssPort}/mqtt` }),
        http: `http://${config.publicHost}:${httpPort}`
      })
      onClose('cluster heartbeat', () => member.stop())
    }

    return {
      config,
      http,
      httpPort,
      mqttPort: node?.listeners.mqttPort,
      wsPort: node?.listeners.wsPort,
      mqttsPort: node?.listeners.mqttsPort,
      wssPort: node?.listeners.wssPort,
      broker: node?.broker,
      devices: servesApi ? devices : undefined,
      spool: node?.bridge.spool,
      shipper: node?.bridge.shipper,
      receiptStream,
      close: closers.close
    }
  } catch (err) {
    await closers.close()
    throw err
  }
}

interface BrokerRoleParts {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Metrics
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
  readonly redis: Redis | undefined
  readonly stores: Stores
  readonly devices: DeviceService
  readonly connections: ConnectionControl
  readonly local: LocalNode
  readonly pushStack: PushStack
}

/** The parts of a broker node (roles all and broker), opened in order; the cluster member starts once HTTP listens. */
async function startBrokerRole (parts: BrokerRoleParts): Promise<{ bridge: UplinkBridge, member: ClusterMember, transport: RedisTransport | undefined, broker: BrokerNode, listeners: Listeners }> {
  const { config, logger, metrics, onClose, stores, devices, local } = parts
  const bridge = await openUplinkBridge({ config, logger, metrics: metrics.uplink, onClose })
  // The node's traffic counters, written into its registry record at each heartbeat.
  const traffic = createTrafficSampler({ uplinks: metrics.broker.uplinks, downlinks: metrics.push.downlinks, kafkaRecords: metrics.uplink.kafkaRecords, spoolDepth: () => bridge.spool.unshippedRecords })
  const member = createClusterMember({
    nodeId: config.nodeId,
    logger: logger.child({ component: 'cluster' }),
    registry: stores.nodes,
    presence: stores.presence,
    heartbeatMs: config.heartbeatMs,
    weight: config.nodeWeight,
    drainRate: config.drainRate,
    traffic: traffic.sample,
    onPresence: (event) => { bridge.presenceEvents?.publish(event) },
    onTakeover: (deviceId, replaced) => {
      parts.connections.kick(deviceId, 'takeover', { nodeId: replaced.nodeId, epoch: replaced.epoch }).catch((err: Error) => {
        logger.warn({ event: 'takeover_kick_failed', deviceId, err: err.message }, 'could not tell the other node to close the replaced connection')
      })
    },
    sessionExpiryMs: config.sessionExpirySeconds * 1000,
    counters: stores.counters,
    onDrift: (drift) => { metrics.cluster.presenceDrift.set(drift) }
  })
  // Registered before the broker opens, so it runs after the broker has closed its clients.
  onClose('cluster leave', () => member.leave())

  const transport = config.redis === undefined
    ? undefined
    : createRedisTransport({
      target: config.redis,
      prefix: config.redisPrefix,
      nodeId: config.nodeId,
      logger,
      onSubscriberGap: (gap) => {
        metrics.cluster.pubsubGaps.inc()
        metrics.cluster.pubsubGapSeconds.inc((gap.endedAt - gap.startedAt) / 1000)
        local.resendStored().then((n) => {
          logger.warn({ event: 'pubsub_gap_resent', messages: n }, 'resent stored QoS 1 messages to persistent sessions after a pub/sub gap')
        }, (err: Error) => { logger.error({ event: 'pubsub_gap_resend_failed', err: err.message }, 'resend after a pub/sub gap failed') })
      }
    })
  if (transport !== undefined) onClose('redis transport', () => transport.close())
  const broker = await createBrokerNode({
    nodeId: config.nodeId,
    logger: logger.child({ component: 'broker' }),
    metrics: metrics.broker,
    allowAnonymous: config.allowAnonymous,
    maxPayloadBytes: config.maxPayloadBytes,
    aclDenyAction: config.aclDenyAction,
    checkToken: async (deviceId, token) => await devices.checkToken(deviceId, token),
    isRegisteredDevice: async (deviceId) => await stores.devices.get(deviceId) !== undefined,
    ...(config.tlsClientCaFile !== undefined && {
      certificates: createCertificateLogins({ idField: config.tlsClientIdField, check: async (deviceId, issuedAt) => await devices.checkCertificate(deviceId, issuedAt) })
    }),
    uplinks: bridge.spool,
    uplinkRate: config.uplinkRatePerSecond === 0 ? undefined : { perSecond: config.uplinkRatePerSecond, burst: config.uplinkRateBurst },
    mq: transport?.mq,
    persistence: transport?.persistence,
    connectTimeoutMs: config.connectTimeoutMs,
    keepaliveMaxSeconds: config.keepaliveMaxSeconds,
    ...parts.pushStack.brokerHooks
  })
  onClose('broker', () => broker.close())
  local.serve({ broker, member })
  await parts.pushStack.startAgent(broker)
  const bytes = createNetworkByteMeter()
  metrics.broker.readNetworkBytesFrom(bytes.totals)
  const flood = installFloodGuard(broker.aedes, {
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
  const listeners = await startListeners({
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
  // Stop accepting before the broker closes its clients.
  onClose('listeners', () => listeners.close())
  return { bridge, member, transport, broker, listeners }
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
