import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'

// The highly available services `scripts/services.sh ha-up` started (a Redis primary, a replica, three Sentinels
// and three Kafka brokers) and the chaos the failover tests do to them: SIGKILL of real processes, and a restart.
// They are started once for all HA tests (scripts/test.sh); each test leaves them whole again.

function required (name: string): string {
  const v = process.env[name]
  if (v === undefined || v === '') throw new Error(`${name} is not set: run the HA tests through \`npm test\` (scripts/services.sh ha-up starts the HA services)`)
  return v
}

export const haSentinels = (): string => required('PUSHLINE_TEST_HA_SENTINELS')
export const haMaster = (): string => required('PUSHLINE_TEST_HA_SENTINEL_MASTER')
export const haKafkaBrokers = (): string[] => required('PUSHLINE_TEST_HA_KAFKA_BROKERS').split(',')
const haDir = (): string => required('PUSHLINE_TEST_HA_DIR')
const redisPorts = (): number[] => required('PUSHLINE_TEST_HA_REDIS_PORTS').split(',').map(Number)

/** The settings that point a Pushline process at the Sentinels. */
export function haRedisEnv (): Record<string, string> {
  return { PUSHLINE_REDIS_SENTINELS: haSentinels(), PUSHLINE_REDIS_SENTINEL_MASTER: haMaster() }
}

async function servicesCommand (...args: string[]): Promise<void> {
  await promisify(execFile)('bash', [required('PUSHLINE_TEST_SERVICES'), ...args])
}

const pidOf = (file: string): number => Number(readFileSync(file, 'utf8').trim())

/** A connection to one of the Sentinels (the first that answers). */
export function sentinelClient (): Redis {
  const [host, port] = (haSentinels().split(',')[0] as string).split(':')
  return new Redis({ host, port: Number(port), maxRetriesPerRequest: 2, lazyConnect: true })
}

/** The Redis server (1 or 2) the Sentinels name primary now, and its port. */
export async function currentPrimary (): Promise<{ server: number, port: number }> {
  const s = sentinelClient()
  try {
    const reply = await s.call('SENTINEL', 'get-master-addr-by-name', haMaster()) as [string, string]
    const port = Number(reply[1])
    const server = redisPorts().indexOf(port) + 1
    if (server === 0) throw new Error(`the Sentinels name 127.0.0.1:${port} primary, which services.sh did not start`)
    return { server, port }
  } finally {
    s.disconnect()
  }
}

/** SIGKILLs Redis server N. */
export function killRedis (server: number): void {
  process.kill(pidOf(join(haDir(), `redis-${server}`, 'redis.pid')), 'SIGKILL')
}

/** Starts Redis server N again as a replica of the current primary, and waits until it is in sync. */
export async function restartRedis (server: number): Promise<void> {
  await servicesCommand('ha-redis-start', String(server))
}

/** SIGSTOPs (true) or SIGCONTs (false) the three Sentinels: frozen, they cannot fail over. */
export function freezeSentinels (frozen: boolean): void {
  for (const n of [1, 2, 3]) process.kill(pidOf(join(haDir(), `sentinel-${n}`, 'sentinel.pid')), frozen ? 'SIGSTOP' : 'SIGCONT')
}

/** SIGKILLs Kafka broker N (node.id N, the Nth of haKafkaBrokers()). */
export function killKafkaBroker (broker: number): void {
  process.kill(pidOf(join(haDir(), `kafka-${broker}`, 'kafka.pid')), 'SIGKILL')
}

/** Starts Kafka broker N again with its data. */
export async function restartKafkaBroker (broker: number): Promise<void> {
  await servicesCommand('ha-kafka-start', String(broker))
}

/** Polls until check() holds; returns how long it took, or throws after `ms`. */
export async function timeUntil (what: string, check: () => Promise<boolean>, ms: number, every = 100): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - started
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}

async function eachSentinel<T> (fn: (s: Redis) => Promise<T>): Promise<T[]> {
  return await Promise.all(haSentinels().split(',').map(async (hp) => {
    const [host, port] = hp.split(':')
    const s = new Redis({ host, port: Number(port), maxRetriesPerRequest: 2, lazyConnect: true })
    try {
      return await fn(s)
    } finally {
      s.disconnect()
    }
  }))
}

/**
 * Sets how long the Sentinels wait before they fail a silent primary over, and returns the previous value. A long
 * one holds the cluster in an outage (primary dead, no failover) for as long as a test needs it.
 */
export async function setSentinelDownAfter (ms: number): Promise<number> {
  const before = await eachSentinel(async (s) => {
    const fields = await s.call('SENTINEL', 'master', haMaster()) as string[]
    const previous = Number(fields[fields.indexOf('down-after-milliseconds') + 1])
    await s.call('SENTINEL', 'SET', haMaster(), 'down-after-milliseconds', String(ms))
    return previous
  })
  return before[0] as number
}

/** Makes the Sentinels promote the replica now (SENTINEL FAILOVER), whether or not they see the primary down. */
export async function forceFailover (): Promise<void> {
  const s = sentinelClient()
  try {
    await s.call('SENTINEL', 'FAILOVER', haMaster())
  } finally {
    s.disconnect()
  }
}

/** Names of the client connections the Redis server on `port` holds (CLIENT LIST). */
export async function clientNames (port: number): Promise<string[]> {
  const r = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 2, lazyConnect: true })
  try {
    const list = await r.call('CLIENT', 'LIST') as string
    return list.split('\n').map((line) => /\bname=(\S*)/.exec(line)?.[1] ?? '').filter((n) => n !== '')
  } finally {
    r.disconnect()
  }
}

/** SIGSTOPs (true) or SIGCONTs (false) Redis server N: a frozen replica stays connected but confirms nothing. */
export function freezeRedis (server: number, frozen: boolean): void {
  process.kill(pidOf(join(haDir(), `redis-${server}`, 'redis.pid')), frozen ? 'SIGSTOP' : 'SIGCONT')
}
