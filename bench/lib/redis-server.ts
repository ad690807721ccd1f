// A Redis server of a benchmark's own: redis-server on a free loopback port, no persistence, nothing else in it, for
// figures that must not share the server (its memory, its cores) with the tests' Redis of scripts/services.sh.

import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { BENCH_HOST } from './brokers.ts'
import { onCpus } from './cpu-affinity.ts'
import { isAlive, track } from './lifecycle.ts'
import { freePort, waitUntil } from './proc.ts'

export interface PrivateRedis {
  readonly url: string
  readonly port: number
  readonly pid: number
  readonly version: string
  /** SIGKILL (it keeps nothing worth a clean shutdown), then removes its dir. Idempotent. */
  stop (): Promise<void>
}

/** Starts redis-server (on `cpus` when given) and resolves once it answers PING. */
export async function startPrivateRedis (opts: { readonly name: string, readonly cpus?: readonly number[] }): Promise<PrivateRedis> {
  const port = await freePort(BENCH_HOST)
  const dir = await mkdtemp(join(tmpdir(), `pushline-${opts.name}-redis-`))
  // As scripts/services.sh runs it: pubsub 0 0 0 keeps Redis from dropping a slow pub/sub subscriber under load.
  const cmd = onCpus(opts.cpus, 'redis-server', ['--port', String(port), '--bind', BENCH_HOST, '--save', '', '--appendonly', 'no',
    '--client-output-buffer-limit', 'pubsub 0 0 0', '--dir', dir])
  const server = track(spawn(cmd.command, cmd.args, { stdio: 'ignore' }))
  const exited = new Promise<void>((resolve) => { server.once('exit', () => resolve()) })
  const spawned = new Promise<void>((resolve, reject) => {
    server.once('spawn', () => resolve())
    server.once('error', reject)
  })
  const stop = async (): Promise<void> => {
    if (server.pid !== undefined && isAlive(server)) {
      server.kill('SIGKILL')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  }
  const url = `redis://${BENCH_HOST}:${port}`
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100, lazyConnect: true })
  redis.on('error', () => {}) // until the server listens; commands fail with the reason
  try {
    await spawned
    const up = await waitUntil(async () => {
      if (!isAlive(server)) throw new Error(`redis-server on port ${port} exited during start (code ${server.exitCode})`)
      return await redis.ping().then(() => true, () => false)
    }, 10_000, 100)
    if (!up) throw new Error(`redis-server on port ${port} did not answer within 10 s`)
    const version = /^redis_version:(\S+)/m.exec(await redis.info('server'))?.[1] ?? '?'
    return { url, port, pid: server.pid as number, version, stop }
  } catch (err) {
    await stop()
    throw err
  } finally {
    redis.disconnect()
  }
}
