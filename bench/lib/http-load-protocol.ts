// Messages between http-load.ts (parent) and http-load-worker.ts (a forked child).

export interface HttpRequestSpec {
  readonly method: 'GET' | 'POST'
  readonly path: string
  /** JSON body (POST). */
  readonly body?: unknown
  /** Extra request headers, e.g. the admin key's authorization. */
  readonly headers?: Readonly<Record<string, string>>
}

export interface HttpLoadJob {
  readonly type: 'run'
  readonly baseUrl: string
  readonly requests: readonly HttpRequestSpec[]
  /** Requests in flight (one keep-alive connection each). */
  readonly concurrency: number
}

export interface HttpLoadResult {
  readonly type: 'result'
  readonly wallMs: number
  /** Latency of each 2xx answer, ms, in completion order. */
  readonly latenciesMs: number[]
  readonly statuses: Record<string, number>
  readonly errors: number
  readonly errorSamples: string[]
  /** Bodies of 2xx answers when the job asked for them (tokens, to reuse them later). */
  readonly bodies?: string[]
  readonly cpuSeconds: number
}
