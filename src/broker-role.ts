import type { Logger } from 'pino'
import { createBrokerNode, type BrokerNode } from './broker/create-broker-node.ts'
import { createCertificateLogins } from './broker/client-certificate.ts'
import type { Listeners } from './broker/listeners.ts'
import { createClusterMember, type ClusterMember } from './cluster/cluster-member.ts'
import type { LocalNode } from './cluster/local-node.ts'
import { createTrafficSampler } from './cluster/node-traffic.ts'
import { createRedisTransport, type RedisTransport } from './cluster/redis-transport.ts'
import type { Config } from './config/load-config.ts'
import { closeRedis, createRedis } from './shared/redis.ts'
import { createRedisNodeRegistry } from './stores/redis-node-registry.ts'
import type { Metrics } from './metrics/metrics.ts'
import type { PushStack } from './push/push-stack.ts'
import type { ConnectionControl } from './registry/connection-control.ts'
import type { DeviceService } from './registry/device-service.ts'
import type { Stores } from './stores/create-stores.ts'
import { openUplinkBridge, type UplinkBridge } from './uplink/open-uplink-bridge.ts'

// The second half of the composition root (src/main.ts): the parts only a broker node has (roles all and
// broker), opened in dependency order, each registering its close with onClose.

export interface BrokerRole {
  readonly bridge: UplinkBridge
  readonly member: ClusterMember
  /** Cluster mode only. */
  readonly transport: RedisTransport | undefined
  readonly broker: BrokerNode
  readonly listeners: Listeners
}

export interface BrokerRoleParts {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Metrics
  readonly onClose: (name: string, fn: () => Promise<unknown>) => void
  readonly stores: Stores
  readonly devices: DeviceService
  readonly connections: ConnectionControl
  readonly local: LocalNode
  readonly pushStack: PushStack
}

/** The parts of a broker node (roles all and broker), opened in order; the cluster member starts once HTTP listens. */
export async function startBrokerRole (parts: BrokerRoleParts): Promise<BrokerRole> {
  const { config, logger, metrics, onClose, stores, devices, local } = parts
  const bridge = await openUplinkBridge({ config, logger, metrics: metrics.uplink, onClose })
  // The node's traffic counters, written into its registry record at each heartbeat.
  const traffic = createTrafficSampler({ uplinks: metrics.broker.uplinks, downlinks: metrics.push.downlinks, kafkaRecords: metrics.uplink.kafkaRecords, spoolDepth: () => bridge.spool.unshippedRecords })
  // Heartbeats on a Redis connection of their own: on the shared one they waited behind every presence write and
  // reconciliation command queued before them, and under load a live node looked dead to the others.
  const membershipRedis = config.redis === undefined ? undefined : createRedis(config.redis, logger, `pushline:${config.nodeId}:membership`)
  // Registered before the member's leave, so it closes after the leave has removed the node's record.
  if (membershipRedis !== undefined) onClose('membership redis', () => closeRedis(membershipRedis))
  const member = createClusterMember({
    nodeId: config.nodeId,
    logger: logger.child({ component: 'cluster' }),
    registry: membershipRedis === undefined ? stores.nodes : createRedisNodeRegistry({ redis: membershipRedis, prefix: config.redisPrefix }),
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
    connectGate: { concurrency: config.connectConcurrency, queue: config.connectQueue, maxWaitMs: config.connectQueueWaitMs },
    connectTimeoutMs: config.connectTimeoutMs,
    keepaliveMaxSeconds: config.keepaliveMaxSeconds,
    connections: {
      host: config.host,
      mqttPort: config.mqttPort,
      wsPort: config.wsPort,
      ...(config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined && {
        tls: {
          certFile: config.tlsCertFile,
          keyFile: config.tlsKeyFile,
          caFile: config.tlsCaFile,
          clientCaFile: config.tlsClientCaFile,
          clientCrlFile: config.tlsClientCrlFile,
          mqttsPort: config.mqttsPort,
          wssPort: config.wssPort
        }
      }),
      subscriberBufferBytes: config.subscriberBufferBytes,
      deliveryQueueMax: config.deliveryQueueMax,
      maxConnections: config.maxConnections,
      connectRatePerSecond: config.connectRatePerSecond,
      connectRateBurst: config.connectRateBurst
    },
    ...parts.pushStack.brokerHooks
  })
  onClose('broker', () => broker.close())
  local.serve({ broker, member })
  await parts.pushStack.startAgent(broker)
  const listeners = await broker.listen()
  // Stop accepting before the broker closes its clients.
  onClose('listeners', () => listeners.close())
  return { bridge, member, transport, broker, listeners }
}
