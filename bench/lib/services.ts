// The real Redis (and Kafka) of scripts/services.sh, for benchmarks. ensureServices() reuses running services
// (reads .services/env) or starts them with `services.sh up`; its stop() runs `services.sh down` only when it
// started them, so services are left as they were found.

import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'

export interface Services {
  readonly redisUrl: string
  readonly kafkaBrokers: string | undefined
  /** True when ensureServices() ran `services.sh up` itself. */
  readonly startedHere: boolean
  /** `services.sh down` if they were started here; nothing otherwise. */
  stop (): Promise<void>
}

function runScript (root: string, command: 'up' | 'down'): Promise<void> {
  return new Promise((resolve, reject) => {
    // Bounded: services.sh waits at most SERVICES_START_TIMEOUT (90 s) per service; apt or Maven may add to a first run.
    const child = execFile('bash', [join(root, 'scripts/services.sh'), command], { cwd: root, timeout: 600_000 }, (err) => {
      if (err !== null) reject(new Error(`scripts/services.sh ${command} failed: ${err.message}`))
      else resolve()
    })
    child.stderr?.pipe(process.stderr)
  })
}

function readEnv (file: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0) env[line.slice(0, eq).trim()] = line.slice(eq + 1).trim()
  }
  return env
}

async function ping (url: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
  } finally {
    redis.disconnect()
  }
}

export async function ensureServices (root: string): Promise<Services> {
  const envFile = join(root, '.services/env')
  let startedHere = false
  if (!existsSync(envFile)) {
    process.stderr.write('bench: no .services/env, running scripts/services.sh up\n')
    await runScript(root, 'up')
    startedHere = true
  }
  const env = readEnv(envFile)
  const redisUrl = env.PUSHLINE_TEST_REDIS_URL
  if (redisUrl === undefined || redisUrl === '') throw new Error(`${envFile} has no PUSHLINE_TEST_REDIS_URL`)
  try {
    await ping(redisUrl)
  } catch (err) {
    // Someone else's services, stopped on purpose (redis-stop) or dying: do not restart what this run did not start.
    if (startedHere) await runScript(root, 'down').catch(() => {})
    throw new Error(`Redis at ${redisUrl} (from ${envFile}) does not answer: ${(err as Error).message}. Run \`bash scripts/services.sh up\` (or \`down\`) first.`)
  }
  let stopped = false
  return {
    redisUrl,
    kafkaBrokers: env.PUSHLINE_TEST_KAFKA_BROKERS,
    startedHere,
    async stop () {
      if (!startedHere || stopped) return
      stopped = true
      await runScript(root, 'down')
    }
  }
}

/** Process id and version of the Redis server behind `url` (INFO server), for CPU accounting and reports. */
export async function redisServerInfo (url: string): Promise<{ pid: number, version: string }> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const info = await redis.info('server')
    const field = (name: string): string => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? ''
    return { pid: Number(field('process_id')), version: field('redis_version') }
  } finally {
    redis.disconnect()
  }
}

/** Calls per Redis command so far (INFO commandstats), e.g. { get: 120, evalsha: 40 }; counts every client of that Redis. */
export async function redisCommandCalls (url: string): Promise<Record<string, number>> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const info = await redis.info('commandstats')
    const calls: Record<string, number> = {}
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1] as string] = Number(m[2])
    return calls
  } finally {
    redis.disconnect()
  }
}
