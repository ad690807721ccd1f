// Messages between puback-probe.ts (parent) and puback-probe-worker.ts (a forked child).

export interface PubackProbeStart {
  readonly type: 'start'
  readonly url: string
  readonly id: string
  readonly token: string
  /** QoS 1 publishes per second, open loop. */
  readonly rate: number
}

export interface PubackProbeStop {
  readonly type: 'stop'
}

export type PubackProbeJob = PubackProbeStart | PubackProbeStop

export type PubackProbeReport =
  | { readonly type: 'ready' }
  | { readonly type: 'started' }
  | { readonly type: 'stopped', readonly sent: number, readonly latencies: number[] }
  | { readonly type: 'failed', readonly message: string }
