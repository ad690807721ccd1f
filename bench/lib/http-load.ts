// HTTP load from a forked worker (http-load-worker.ts): runHttpLoad() sends the given requests with a fixed
// number in flight and resolves with the rate, latency percentiles and the 2xx bodies.

import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { HttpLoadJob, HttpLoadResult, HttpRequestSpec } from './http-load-protocol.ts'
import { track } from './lifecycle.ts'
import { percentile } from './stats.ts'

export type { HttpRequestSpec } from './http-load-protocol.ts'

const WORKER = fileURLToPath(new URL('./http-load-worker.ts', import.meta.url))

export interface HttpLoadFigures {
  readonly requests: number
  readonly ok: number
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly wallMs: number
  readonly statuses: Record<string, number>
  readonly errors: number
  readonly errorSamples: string[]
  readonly workerCpuSeconds: number
  readonly bodies: string[]
}

export async function runHttpLoad (baseUrl: string, requests: readonly HttpRequestSpec[], concurrency: number): Promise<HttpLoadFigures> {
  const child = track(fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const result = await new Promise<HttpLoadResult>((resolve, reject) => {
    child.once('message', (m: HttpLoadResult) => resolve(m))
    child.once('exit', (code) => reject(new Error(`http load worker exited (${code}) without a result`)))
    child.send({ type: 'run', baseUrl, requests, concurrency } satisfies HttpLoadJob)
  })
  const sorted = Float64Array.from(result.latenciesMs).sort()
  return {
    requests: requests.length,
    ok: sorted.length,
    perSecond: sorted.length / (result.wallMs / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    wallMs: result.wallMs,
    statuses: result.statuses,
    errors: result.errors,
    errorSamples: result.errorSamples,
    workerCpuSeconds: result.cpuSeconds,
    bodies: result.bodies ?? []
  }
}
