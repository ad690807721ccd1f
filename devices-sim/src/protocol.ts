// Messages between the coordinator and its worker processes (IPC, JSON).

import type { DeviceDetail } from './device.ts'
import type { IssuedToken } from './http-api.ts'
import type { Snapshot } from './metrics.ts'
import type { SimOptions } from './options.ts'
import type { SourceEndpoint } from './source-endpoints.ts'

export interface DeviceCredentials {
  readonly id: string
  readonly groups: readonly string[]
  readonly secret?: string
  /** A cached token (--cache-tokens), used while it has more than a minute left. */
  readonly token?: IssuedToken
}

export type ToWorker =
  | {
    readonly type: 'start'
    readonly index: number
    readonly options: SimOptions
    readonly devices: readonly DeviceCredentials[]
    /** Source address and port of each device, by position in `devices` (empty: let the OS choose). */
    readonly sources: readonly SourceEndpoint[]
    readonly rampPerSecond: number
  }
  /** Every device of the worker should get `count` more targeted downlinks. */
  | { readonly type: 'expect', readonly count: number }
  | { readonly type: 'stop' }

export type FromWorker =
  | { readonly type: 'snapshot', readonly snap: Snapshot }
  | { readonly type: 'credentials', readonly devices: readonly DeviceCredentials[] }
  | { readonly type: 'done', readonly snap: Snapshot, readonly details: readonly DeviceDetail[], readonly tokens: ReadonlyArray<{ readonly id: string, readonly token: IssuedToken }> }
  | { readonly type: 'error', readonly message: string }
