// Connect load from several worker processes (connect-worker.ts), for benchmarks that need many MQTT
// connections: prepareConnectLoad() forks the workers and hands each its share of the clients; run() starts
// them together and resolves when every connect has settled, with the accepted connections still open, so the
// caller can measure the broker in that state; release() closes everything and waits for the workers to exit.
//
//   const load = await prepareConnectLoad({ host, port, clients, workers: 2 })
//   const result = await load.run()     // result.connectsPerSecond, result.latencyMs.p99, ...
//   ...                                  // e.g. read the broker's RSS
//   await load.release()

import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ConnectCounts, ConnectCredentials, ConnectJob, ConnectWorkerResult, ParentMessage, WorkerMessage } from './connect-protocol.ts'
import { isAlive, track } from './lifecycle.ts'
import { percentile } from './stats.ts'

export type { ConnectCredentials } from './connect-protocol.ts'

/** Each process may hold at most 20,000 open files; a worker keeps every accepted connection open. */
export const MAX_CONNECTIONS_PER_WORKER = 18_000

export interface ConnectLoadOptions {
  readonly host: string
  readonly port: number
  /** Source addresses (127.0.0.x), one per worker round-robin; default: the kernel's choice. */
  readonly localAddresses?: readonly string[]
  /** Split round-robin over the workers. */
  readonly clients: readonly ConnectCredentials[]
  readonly workers: number
  /** Connects in flight per worker (default 200). */
  readonly concurrency?: number
  /** MQTT keepalive in seconds (default 300). */
  readonly keepaliveSeconds?: number
  /** Default true. */
  readonly clean?: boolean
  /** Default 10 s. */
  readonly connectTimeoutMs?: number
  /** A worker exits by itself after this long (default 10 min). */
  readonly maxLifetimeMs?: number
}

export interface ConnectLoadResult extends ConnectCounts {
  /** From the first CONNECT sent by any worker to the last connect settled in any worker. */
  readonly wallSeconds: number
  /** accepted / wallSeconds. */
  readonly connectsPerSecond: number
  /** connect() to CONNACK of accepted connects. */
  readonly latencyMs: { readonly p50: number, readonly p90: number, readonly p99: number, readonly max: number }
  /** CPU seconds the workers used during the run. */
  readonly workerCpuSeconds: number
  readonly perWorker: ReadonlyArray<Omit<ConnectWorkerResult, 'latenciesMs'>>
}

export interface ConnectLoad {
  /** Starts every worker at once; resolves when every connect has settled. Call once. */
  run (): Promise<ConnectLoadResult>
  /** Closes every connection, waits for the workers to exit; resolves to how many accepted connections the broker dropped before. */
  release (): Promise<{ droppedAfterConnack: number }>
  /** Kills the workers (for error paths). */
  kill (): void
}

const WORKER = fileURLToPath(new URL('./connect-worker.ts', import.meta.url))
// The worker is TypeScript: it runs with the tsx loader, resolved from here so any working directory works.
const TSX_LOADER = import.meta.resolve('tsx')

class Worker {
  private readonly waiting = new Map<WorkerMessage['type'], { resolve: (m: WorkerMessage) => void, reject: (e: Error) => void }>()
  private failure: Error | undefined

  constructor (readonly child: ChildProcess) {
    child.on('message', (message: WorkerMessage) => {
      if (message.type === 'failed') return this.fail(new Error(`connect worker failed: ${message.message}`))
      const w = this.waiting.get(message.type)
      this.waiting.delete(message.type)
      w?.resolve(message)
    })
    // 'close', not 'exit': a worker's last IPC message (released) can still be on its way when 'exit' fires.
    child.once('close', (code, signal) => {
      if (code !== 0 || this.waiting.size > 0) this.fail(new Error(`connect worker exited (code ${code}, signal ${signal})`))
    })
    child.once('error', (err) => this.fail(err))
  }

  private fail (err: Error): void {
    this.failure ??= err
    for (const w of this.waiting.values()) w.reject(err)
    this.waiting.clear()
  }

  request<T extends WorkerMessage['type']> (message: ParentMessage | undefined, reply: T, timeoutMs: number): Promise<Extract<WorkerMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.failure !== undefined) return reject(this.failure)
      const timer = setTimeout(() => { this.waiting.delete(reply); reject(new Error(`connect worker: no ${reply} within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting.set(reply, {
        resolve: (m) => { clearTimeout(timer); resolve(m as Extract<WorkerMessage, { type: T }>) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
      if (message !== undefined) this.child.send(message)
    })
  }
}

/** Forks the workers and has each build its CONNECT packets; resolves when all are ready to go. */
export async function prepareConnectLoad (opts: ConnectLoadOptions): Promise<ConnectLoad> {
  const n = opts.workers
  if (!Number.isInteger(n) || n < 1) throw new Error('workers must be a positive integer')
  if (opts.clients.length / n > MAX_CONNECTIONS_PER_WORKER) {
    throw new Error(`${opts.clients.length} connections over ${n} workers is more than ${MAX_CONNECTIONS_PER_WORKER} per worker (open-file limit): add workers`)
  }
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000
  const maxLifetimeMs = opts.maxLifetimeMs ?? 600_000
  const shares: ConnectCredentials[][] = Array.from({ length: n }, () => [])
  opts.clients.forEach((c, i) => { (shares[i % n] as ConnectCredentials[]).push(c) })

  const workers = shares.map(() => new Worker(track(fork(WORKER, [], {
    execArgv: ['--import', TSX_LOADER],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  }))))
  const kill = (): void => { for (const w of workers) if (isAlive(w.child)) w.child.kill('SIGKILL') }

  try {
    await Promise.all(workers.map((w, workerIndex) => {
      const job: ConnectJob = {
        workerIndex,
        host: opts.host,
        port: opts.port,
        ...(opts.localAddresses !== undefined && opts.localAddresses.length > 0 && { localAddress: opts.localAddresses[workerIndex % opts.localAddresses.length] as string }),
        clients: shares[workerIndex] as ConnectCredentials[],
        concurrency: opts.concurrency ?? 200,
        keepaliveSeconds: opts.keepaliveSeconds ?? 300,
        clean: opts.clean ?? true,
        connectTimeoutMs,
        maxLifetimeMs
      }
      return w.request({ type: 'job', job }, 'ready', 30_000)
    }))
  } catch (err) {
    kill()
    throw err
  }

  let ran = false
  return {
    async run () {
      if (ran) throw new Error('run() may be called once')
      ran = true
      // Bounded: every connect settles within connectTimeoutMs once started; the queue adds at most clients/concurrency waves.
      const boundMs = connectTimeoutMs * Math.ceil(opts.clients.length / n / (opts.concurrency ?? 200) + 1) + 30_000
      const replies = await Promise.all(workers.map((w) => w.request({ type: 'go' }, 'result', boundMs)))
        .catch((err: unknown) => { kill(); throw err })
      return aggregate(replies.map((r) => r.result))
    },
    async release () {
      const replies = await Promise.all(workers.map((w) => w.request({ type: 'release' }, 'released', 30_000)))
        .catch((err: unknown) => { kill(); throw err })
      await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
        if (!isAlive(w.child)) resolve()
        else w.child.once('exit', () => resolve())
      })))
      return { droppedAfterConnack: replies.reduce((sum, r) => sum + r.droppedAfterConnack, 0) }
    },
    kill
  }
}

function aggregate (results: ConnectWorkerResult[]): ConnectLoadResult {
  const sum = (f: (r: ConnectWorkerResult) => number): number => results.reduce((s, r) => s + f(r), 0)
  const refused: Record<number, number> = {}
  for (const r of results) for (const [code, count] of Object.entries(r.refused)) refused[Number(code)] = (refused[Number(code)] ?? 0) + count
  const first = results.reduce((min, r) => r.firstConnectNs < min ? r.firstConnectNs : min, results[0]?.firstConnectNs ?? 0n)
  const last = results.reduce((max, r) => r.lastSettledNs > max ? r.lastSettledNs : max, 0n)
  const wallSeconds = Number(last - first) / 1e9
  const accepted = sum((r) => r.accepted)
  const latencies = new Float64Array(accepted)
  let offset = 0
  for (const r of results) { latencies.set(r.latenciesMs, offset); offset += r.latenciesMs.length }
  latencies.sort()
  return {
    attempted: sum((r) => r.attempted),
    accepted,
    refused,
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    errorSamples: [...new Set(results.flatMap((r) => r.errorSamples))].slice(0, 5),
    droppedAfterConnack: sum((r) => r.droppedAfterConnack),
    wallSeconds,
    connectsPerSecond: wallSeconds > 0 ? accepted / wallSeconds : 0,
    latencyMs: {
      p50: percentile(latencies, 0.5),
      p90: percentile(latencies, 0.9),
      p99: percentile(latencies, 0.99),
      max: latencies.length === 0 ? 0 : latencies[latencies.length - 1] as number
    },
    workerCpuSeconds: sum((r) => r.cpuUserUs + r.cpuSystemUs) / 1e6,
    perWorker: results.map(({ latenciesMs: _latencies, ...rest }) => rest)
  }
}
