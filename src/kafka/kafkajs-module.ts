import { createRequire } from 'node:module'
import type * as KafkaJS from 'kafkajs'
import { installGroupMessagesPerPartition, type GroupMessagesState } from './group-messages-per-partition.ts'

// The one way src/ loads kafkajs's runtime exports (types are imported as usual): an adaptation that kafkajs binds
// when it loads (./group-messages-per-partition.ts) is put in place first. A static import of kafkajs's values
// anywhere in src/ would load kafkajs earlier and leave kafkajs's own grouping in place.

export interface KafkajsModule {
  readonly kafkajs: typeof KafkaJS
  /** Whether kafkajs's producer groups messages with groupMessagesPerPartition() in this process. */
  readonly grouping: GroupMessagesState
}

/** kafkajs, with the adaptations that must precede its load installed (idempotent). */
export function loadKafkajs (): KafkajsModule {
  const require = createRequire(import.meta.url)
  const grouping = installGroupMessagesPerPartition(require)
  return { kafkajs: require('kafkajs') as typeof KafkaJS, grouping }
}

/** kafkajs's runtime exports (see loadKafkajs). */
export const kafkajs = (): typeof KafkaJS => loadKafkajs().kafkajs
