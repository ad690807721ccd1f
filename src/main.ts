// The composition root: the only module that wires factories from several parts together.
// Tests start the platform with startPlatform() exactly as `npm start` does, on port 0.

import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { isMainThread } from 'node:worker_threads'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { BrokerThread } from './api-thread/broker-thread-link.ts'
import { startApiThread } from './api-thread/start-api-thread.ts'
import type { BrokerNode } from './broker/create-broker-node.ts'
import { listenOn } from './broker/listeners.ts'
import { startBrokerRole } from './broker-role.ts'
import { createLocalNode } from './cluster/local-node.ts'
import { createClusterAssigner } from './cluster/node-assigner.ts'
import { openConnectionControl } from './cluster/open-connection-control.ts'
import { loadConfig, type Config } from './config/load-config.ts'
import { createHttpApp } from './http/create-http-app.ts'
import { createReadiness } from './http/readiness.ts'
import { mergedMetrics, type MetricsSnapshot } from './metrics/merged-metrics.ts'
import { createMetrics } from './metrics/metrics.ts'
import { createRequestGate } from './shared/request-gate.ts'
import { startRedisLatencyProbe } from './metrics/redis-latency-probe.ts'
import { createDeviceService, type DeviceService } from './registry/device-service.ts'
import { createTokenGuard } from './registry/token-guard.ts'
import { countReceipts } from './push/counted-receipt-store.ts'
import { openReceiptStream, type ReceiptStreamHandle } from './push/open-receipt-stream.ts'
import { createPushStack } from './push/push-stack.ts'
import { createClosers } from './shared/closers.ts'
import { isPushlineError } from './shared/errors.ts'
import { createLogger } from './shared/logger.ts'
import { openReplicaWait } from './shared/open-replica-wait.ts'
import { closeRedis, createRedis } from './shared/redis.ts'
import { stopOnSignals } from './shared/stop-on-signals.ts'
import { logStartSettings, startBanner } from './start-messages.ts'
import { createStores } from './stores/create-stores.ts'
import type { FileSpool } from './uplink/file-spool.ts'
import type { KafkaShipper } from './uplink/kafka-shipper.ts'

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
  /** The part a close() in progress is waiting for. */
  readonly closingPart: () => string | undefined
}

export interface PlatformOptions {
  /** Set in role all's API thread (src/api-thread/): the broker thread of the same process. */
  readonly brokerThread?: BrokerThread
}

/**
 * Opens every part in dependency order; close() closes them in reverse. A failed start closes what it had opened.
 * With config.apiThread, this thread runs the broker part and the HTTP API runs in a thread of its own, which
 * starts this same composition in role api; http is then this thread's app, which does not listen.
 */
export async function startPlatform (config: Config, logger: Logger, opts: PlatformOptions = {}): Promise<Platform> {
  const closers = createClosers({ logger, stepMs: CLOSE_STEP_MS })
  const onClose = closers.add
  try {
    const runsBroker = config.role !== 'api'
    const servesApi = config.role !== 'broker' && !config.apiThread
    const { brokerThread } = opts
    // Process metrics once per process: the broker thread has them, and the API thread's /metrics joins them in.
    const metrics = createMetrics({ nodeId: config.nodeId, defaultMetrics: brokerThread === undefined })
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
    const pushStack = await createPushStack({ config, redis, confirmWrites, runsBroker, servesApi, logger: logger.child({ component: 'push' }), stores, metrics: metrics.push, onClose, receiptStream: receiptStream?.stream, receiptJournal: receiptStream?.journal })

    const local = createLocalNode({ nodeId: config.nodeId, logger })
    const connections = await openConnectionControl({ config, redis, runsBroker, logger, kickLocal: local.kick, onClose })
    const devices = createDeviceService({
      devices: stores.devices,
      tokens: stores.tokens,
      exchanges: stores.exchanges,
      connections,
      presence: stores.presence,
      // Node records change on heartbeats (every half period): a view a fraction of that old is current enough.
      assigner: createClusterAssigner({ registry: stores.nodes, counters: stores.counters, strategy: config.assignmentStrategy, viewMaxAgeMs: Math.min(250, Math.round(config.heartbeatMs / 4)) }),
      history: stores.history,
      ...(runsBroker && { forgetSession: local.forgetSession }),
      ...(brokerThread !== undefined && { forgetSession: brokerThread.forgetSession }),
      tokenTtlMs: config.tokenTtlSeconds * 1000,
      confirmWrites
    })
    const node = runsBroker ? await startBrokerRole({ config, logger, metrics, onClose, stores, devices, connections, local, pushStack }) : undefined

    const readiness = createReadiness({
      closing: () => closers.closing,
      redis,
      transport: node?.transport,
      member: node?.member,
      spool: node?.bridge.spool,
      shipper: node?.bridge.shipper,
      receiptShipper: () => receiptStream?.status().shipper,
      brokerThread: brokerThread?.readiness
    })
    const http = await createHttpApp({
      logger,
      nodeId: config.nodeId,
      adminKeys: config.adminKeys,
      provisioningKey: config.provisioningKey,
      metrics: brokerThread === undefined ? metrics.registry : mergedMetrics(metrics.registry, brokerThread.metrics),
      readiness,
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
          push: pushStack.service,
          tokenGate: createRequestGate({
            what: 'token requests',
            // A broker on the same event loop needs it free between token requests (docs/onboarding.md); an API in
            // a thread or process of its own is not on the broker's loop.
            limit: config.tokenConcurrency ?? (runsBroker ? 4 : 0),
            queue: config.tokenQueue,
            onChange: (inFlight, queued) => { metrics.tokenGate.inFlight.set(inFlight); metrics.tokenGate.queued.set(queued) },
            onRefused: () => metrics.tokenGate.refused.inc(),
            onAbandoned: () => metrics.tokenGate.abandoned.inc()
          })
        }
      })
    })
    onClose('http', () => http.close())
    await http.ready()
    let httpPort: number
    if (config.apiThread) {
      const api = await startApiThread({
        config,
        logger,
        readiness,
        metrics: async () => await metrics.registry.getMetricsAsJSON() as MetricsSnapshot,
        forgetSession: local.forgetSession,
        // The broker part closes (each step bounded) so its devices reconnect elsewhere; the exit code tells a
        // process manager to restart the process.
        onDied: () => { closers.close().then(() => process.exit(1), () => process.exit(1)) }
      })
      onClose('api thread', () => api.close())
      httpPort = api.httpPort
    } else {
      httpPort = await listenOn(http.server, config.host, config.httpPort, 'PUSHLINE_HTTP_PORT')
    }

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
      close: closers.close,
      closingPart: () => closers.closingPart
    }
  } catch (err) {
    await closers.close()
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
  logStartSettings(config, logger)
  let platform: Platform
  try {
    platform = await startPlatform(config, logger)
  } catch (err) {
    const message = isPushlineError(err) ? err.message : (err as Error).stack
    logger.fatal({ event: 'start_failed', err: (err as Error).message }, 'start failed')
    process.stderr.write(`pushline: ${message}\n`)
    process.exit(1)
  }
  // Before the banner, which tells whoever started the process that it is up: a signal sent on seeing it must stop
  // the platform, not kill the process with Node's default action.
  stopOnSignals({ logger, graceMs: config.shutdownGraceMs, stop: platform.close, closingPart: platform.closingPart })
  process.stdout.write(startBanner(config, {
    ...platform,
    spoolDir: platform.spool === undefined ? undefined : join(resolve(config.dataDir), 'spool'),
    shipsToKafka: platform.shipper !== undefined,
    receiptsDir: platform.receiptStream?.dir
  }))
}

// Not in the API thread, which imports startPlatform from here.
if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await runMain()
}
