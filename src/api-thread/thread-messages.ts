import type { Config } from '../config/load-config.ts'
import type { ReadinessReport } from '../http/routes/health.ts'
import type { MetricsSnapshot } from '../metrics/merged-metrics.ts'

// What the broker thread and the API thread of role all say to each other (src/api-thread/): the API thread
// asks for the broker thread's readiness and metrics, which its port serves for the whole process, and has it drop
// the local session of a device it deletes before it answers the delete, as role all on one thread does.

/** Handed to the API thread as its workerData. */
export interface ApiThreadData {
  /** The API's configuration (role api). */
  readonly config: Config
  /** Nice increment of the API thread (PUSHLINE_API_THREAD_NICE). */
  readonly nice: number
}

export interface Asked {
  readonly readiness: ReadinessReport
  readonly metrics: MetricsSnapshot
  /** Done: the broker thread has dropped the device's session (the question names the device). */
  readonly forgetSession: null
}

export type FromApiThread =
  | { readonly type: 'started', readonly httpPort: number }
  | { readonly type: 'start_failed', readonly message: string }
  | { readonly type: 'ask', readonly id: number, readonly what: keyof Asked, readonly deviceId?: string }

export type ToApiThread =
  | { readonly type: 'answer', readonly id: number, readonly value?: Asked[keyof Asked], readonly error?: string }
  | { readonly type: 'close' }
