import { createRequire } from 'node:module'
import type * as KafkaJS from 'kafkajs'
import { installGroupMessagesPerPartition, type GroupMessagesState } from './group-messages-per-partition.ts'
import { installRequestFraming, type RequestFramingState } from './request-framing.ts'

// The one way src/ loads kafkajs's runtime exports (types are imported as usual): the adaptations that kafkajs binds
// when it loads (./group-messages-per-partition.ts, ./request-framing.ts) are put in place first. A static import
// of kafkajs's values anywhere in src/ would load kafkajs earlier and leave kafkajs's own grouping and framing.

export interface KafkajsModule {
  readonly kafkajs: typeof KafkaJS
  /** Whether kafkajs's producer groups messages with groupMessagesPerPartition() in this process. */
  readonly grouping: GroupMessagesState
  /** Whether kafkajs's connections frame requests with frameRequest() in this process. */
  readonly framing: RequestFramingState
}

/** kafkajs, with the adaptations that must precede its load installed (idempotent). */
export function loadKafkajs (): KafkajsModule {
  const require = createRequire(import.meta.url)
  const grouping = installGroupMessagesPerPartition(require)
  const framing = installRequestFraming(require)
  return { kafkajs: require('kafkajs') as typeof KafkaJS, grouping, framing }
}

/** kafkajs's runtime exports (see loadKafkajs). */
export const kafkajs = (): typeof KafkaJS => loadKafkajs().kafkajs
