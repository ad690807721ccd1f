// Subscribed connections held by several worker processes (broadcast-worker.ts), for broadcast benchmarks:
// startBroadcastLoad() forks the workers (each with its own 127.0.0.x source address), connects and subscribes
// every client and resolves once all are settled. waitForAll() polls the workers until every client received
// a tagged downlink (or a deadline passes) and returns the receive times.

import { fork, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { BroadcastClient, BroadcastParentMessage, BroadcastWorkerMessage, Misses } from './broadcast-protocol.ts'
import { MAX_CONNECTIONS_PER_WORKER } from './connect-load.ts'
import { isAlive, track } from './lifecycle.ts'

export type { BroadcastClient, Misses } from './broadcast-protocol.ts'

export interface BroadcastLoadOptions {
  readonly host: string
  /** Split round-robin over the workers. */
  readonly clients: readonly BroadcastClient[]
  readonly workers: number
  /** Worker i connects from 127.0.0.{firstSourceOctet + i}. */
  readonly firstSourceOctet?: number
  readonly ack?: boolean
  /** Connects in flight per worker (default 100). */
  readonly concurrency?: number
  /** A worker exits by itself after this long (default 15 min): keep it above the whole run. */
  readonly maxLifetimeMs?: number
}

export interface BroadcastLoad {
  readonly connected: number
  readonly failed: number
  readonly failureSamples: readonly string[]
  /** Connected and subscribed clients per topic filter. */
  readonly subscribed: Readonly<Record<string, number>>
  /**
   * Polls until `expected` clients received `key` or `timeoutMs` passed; resolves the sorted receive times
   * (monotonic ms), the connections closed so far (by why), and the subscribers of `topic` (every client when undefined) that did not receive it.
   */
  waitFor (key: string, expected: number, timeoutMs: number, topic?: string): Promise<Collected>
  release (): Promise<void>
}

export interface Collected {
  readonly atMs: Float64Array
  /** Subscribed connections closed since they were made (not by release()), over every worker. */
  readonly dropped: number
  readonly dropReasons: Readonly<Record<string, number>>
  readonly misses: Misses
}

const WORKER = fileURLToPath(new URL('./broadcast-worker.ts', import.meta.url))
const TSX_LOADER = import.meta.resolve('tsx')

/** One request/reply over a worker's IPC channel at a time per reply type. */
function request<T extends BroadcastWorkerMessage['type']> (child: ChildProcess, message: BroadcastParentMessage, reply: T, timeoutMs: number): Promise<Extract<BroadcastWorkerMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: BroadcastWorkerMessage): void => {
      if (m.type === 'failed') { done(); reject(new Error(`broadcast worker failed: ${m.message}`)) } else if (m.type === reply) { done(); resolve(m as Extract<BroadcastWorkerMessage, { type: T }>) }
    }
    const onExit = (code: number | null): void => { done(); reject(new Error(`broadcast worker exited (code ${code})`)) }
    const timer = setTimeout(() => { done(); reject(new Error(`broadcast worker: no ${reply} within ${timeoutMs} ms`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); child.off('message', onMessage); child.off('exit', onExit) }
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send(message)
  })
}

export async function startBroadcastLoad (opts: BroadcastLoadOptions): Promise<BroadcastLoad> {
  const n = opts.workers
  if (opts.clients.length / n > MAX_CONNECTIONS_PER_WORKER) {
    throw new Error(`${opts.clients.length} connections over ${n} workers is more than ${MAX_CONNECTIONS_PER_WORKER} per worker (open-file limit): add workers`)
  }
  const shares: BroadcastClient[][] = Array.from({ length: n }, () => [])
  opts.clients.forEach((c, i) => { (shares[i % n] as BroadcastClient[]).push(c) })
  const children = shares.map(() => track(fork(WORKER, [], { execArgv: ['--import', TSX_LOADER], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })))
  const kill = (): void => { for (const c of children) if (isAlive(c)) c.kill('SIGKILL') }
  const connectTimeoutMs = 30_000
  const first = opts.firstSourceOctet ?? 20
  let ready
  try {
    ready = await Promise.all(children.map((child, i) => request(child, {
      type: 'job',
      job: {
        host: opts.host,
        localAddress: `127.0.0.${first + i}`,
        clients: shares[i] as BroadcastClient[],
        concurrency: opts.concurrency ?? 100,
        keepaliveSeconds: 900,
        ack: opts.ack ?? false,
        connectTimeoutMs,
        maxLifetimeMs: opts.maxLifetimeMs ?? 900_000
      }
    }, 'ready', connectTimeoutMs * Math.ceil((shares[i]?.length ?? 0) / (opts.concurrency ?? 100) + 2))))
  } catch (err) {
    kill()
    throw err
  }
  return {
    connected: ready.reduce((s, r) => s + r.connected, 0),
    failed: ready.reduce((s, r) => s + r.failed, 0),
    failureSamples: [...new Set(ready.flatMap((r) => r.samples))].slice(0, 5),
    subscribed: ready.reduce<Record<string, number>>((acc, r) => {
      for (const [topic, n] of Object.entries(r.byTopic)) acc[topic] = (acc[topic] ?? 0) + n
      return acc
    }, {}),
    async waitFor (key, expected, timeoutMs, topic) {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        const counts = await Promise.all(children.map((c) => request(c, { type: 'count', key }, 'count', 30_000)))
        if (counts.reduce((s, r) => s + r.received, 0) >= expected) break
        await sleep(100)
      }
      const parts = await Promise.all(children.map((c) => request(c, { type: 'collect', key, ...(topic !== undefined && { topic }) }, 'collected', 30_000)))
      const all = new Float64Array(parts.reduce((s, p) => s + p.atMs.length, 0))
      let offset = 0
      for (const p of parts) { all.set(p.atMs, offset); offset += p.atMs.length }
      all.sort()
      const dropReasons: Record<string, number> = {}
      for (const p of parts) for (const [why, n] of Object.entries(p.dropReasons)) dropReasons[why] = (dropReasons[why] ?? 0) + n
      const misses: Misses = {
        connected: parts.reduce((s, p) => s + p.misses.connected, 0),
        dropped: parts.reduce((s, p) => s + p.misses.dropped, 0),
        samples: parts.flatMap((p) => p.misses.samples).slice(0, 10)
      }
      return { atMs: all, dropped: parts.reduce((s, p) => s + p.dropped, 0), dropReasons, misses }
    },
    async release () {
      for (const c of children) if (isAlive(c)) c.send({ type: 'release' } satisfies BroadcastParentMessage)
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (!isAlive(c)) return resolve()
        const timer = setTimeout(() => { c.kill('SIGKILL') }, 10_000)
        c.once('exit', () => { clearTimeout(timer); resolve() })
      })))
    }
  }
}
