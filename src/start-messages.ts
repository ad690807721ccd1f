import type { Logger } from 'pino'
import type { Config } from './config/load-config.ts'

// What `npm start` tells the operator: the settings worth a warning before the start, and the addresses after it.

export function logStartSettings (config: Config, logger: Logger): void {
  if (config.allowAnonymous) {
    logger.warn({ event: 'anonymous_on' }, 'PUSHLINE_ALLOW_ANONYMOUS is on: clients without credentials may use any topic but $SYS and registered devices\' topics. Development only.')
  }
  if (config.role === 'api') return
  if (config.kafkaBrokers === undefined) {
    logger.info({ event: 'kafka_off' }, 'PUSHLINE_KAFKA_BROKERS is not set: uplinks stay in the local spool, which ships to Kafka once it is configured')
    if (config.spoolMaxBytes !== undefined) {
      logger.warn({ event: 'spool_bound_without_kafka', maxBytes: config.spoolMaxBytes }, 'PUSHLINE_SPOOL_MAX_BYTES is set without Kafka: once the spool holds that much, QoS 1 uplinks wait for good and QoS 0 uplinks are dropped')
    }
  } else {
    logger.info({ event: 'kafka_on', brokers: config.kafkaBrokers, topic: config.kafkaTelemetryTopic, spoolMaxBytes: config.spoolMaxBytes ?? 'unbounded' }, 'uplinks are bridged to Kafka through the local spool')
  }
}

/** What a started platform listens on and writes to (the fields of Platform the banner shows). */
export interface StartedParts {
  readonly httpPort: number
  readonly mqttPort: number | undefined
  readonly wsPort: number | undefined
  readonly mqttsPort: number | undefined
  readonly wssPort: number | undefined
  readonly spoolDir: string | undefined
  readonly shipsToKafka: boolean
  readonly receiptsDir: string | undefined
}

export function startBanner (config: Config, started: StartedParts): string {
  const lines = [
    `pushline ${config.mode} mode, role ${config.role}, node ${config.nodeId}`,
    ...(started.mqttPort === undefined ? [] : [`  MQTT over TCP        mqtt://${config.host}:${started.mqttPort}`]),
    ...(started.wsPort === undefined ? [] : [`  MQTT over WebSocket  ws://${config.host}:${started.wsPort}/mqtt`]),
    ...(started.mqttsPort === undefined ? [] : [`  MQTT over TLS        mqtts://${config.host}:${started.mqttsPort}`]),
    ...(started.wssPort === undefined ? [] : [`  MQTT over WSS        wss://${config.host}:${started.wssPort}/mqtt`]),
    `  HTTP API             http://${config.host}:${started.httpPort}  (OpenAPI UI at /docs)`,
    ...(started.spoolDir === undefined ? [] : [`  uplink spool         ${started.spoolDir}`]),
    ...(!started.shipsToKafka ? [] : [`  Kafka                ${config.kafkaBrokers?.join(',') ?? ''}  (uplinks to topic ${config.kafkaTelemetryTopic})`]),
    ...(started.receiptsDir === undefined ? [] : [`  receipt records      ${started.receiptsDir}${config.kafkaBrokers === undefined ? '' : `  (to topic ${config.kafkaReceiptsTopic})`}`]),
    ...(config.adminKeyGenerated ? [`  admin key (generated for this start; set PUSHLINE_ADMIN_KEYS to keep one): ${config.adminKeys[0] as string}`] : [])
  ]
  return lines.join('\n') + '\n'
}
