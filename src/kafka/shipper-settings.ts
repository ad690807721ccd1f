import type { Config } from '../config/load-config.ts'
import type { KafkaShipperOptions } from '../uplink/kafka-shipper.ts'

/** The produce settings every Kafka shipper of a process takes from the configuration (uplinks and receipt records alike). */
export function shipperSettings (config: Config): Pick<KafkaShipperOptions, 'batchRecords' | 'batchBytes' | 'lingerMs' | 'compression' | 'gzipLevel' | 'backoff'> {
  return {
    batchRecords: config.kafkaBatchRecords,
    batchBytes: config.kafkaBatchBytes,
    lingerMs: config.kafkaLingerMs,
    compression: config.kafkaCompression,
    gzipLevel: config.kafkaGzipLevel,
    backoff: { initialMs: 300, maxMs: config.kafkaBackoffMaxMs }
  }
}
