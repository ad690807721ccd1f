import { randomBytes, randomUUID } from 'node:crypto'
import { settings, SettingValueError, type SettingValue, type Settings } from './settings.ts'
import { PushlineError } from '../shared/errors.ts'

type Values = { readonly [K in keyof Settings]: SettingValue<Settings[K]> }

/** Where Redis is: one server by URL, or the primary the Sentinels name (followed through failovers). */
export type RedisTarget =
  | { readonly kind: 'url', readonly url: string, readonly password: string | undefined, readonly commandTimeoutMs: number }
  | {
    readonly kind: 'sentinel'
    readonly sentinels: ReadonlyArray<{ readonly host: string, readonly port: number }>
    readonly master: string
    readonly password: string | undefined
    readonly sentinelPassword: string | undefined
    readonly commandTimeoutMs: number
  }

export interface Config extends Omit<Values, 'nodeId' | 'adminKeys' | 'kafkaBrokers' | 'spoolMaxBytes' | 'redisSentinels' | 'apiThread'> {
  /** Undefined: embedded mode, every store in memory. */
  readonly redis: RedisTarget | undefined
  readonly redisSentinels: readonly string[] | undefined
  readonly kafkaBrokers: readonly string[] | undefined
  /** Bound on unshipped spool bytes; undefined: no bound (the default without Kafka, where the spool is the sink). */
  readonly spoolMaxBytes: number | undefined
  readonly nodeId: string
  readonly adminKeys: readonly string[]
  /** True when no admin key was configured and one was generated for this start. */
  readonly adminKeyGenerated: boolean
  /** Role `all` serves the HTTP API from a worker thread (src/api-thread/); never without Redis. */
  readonly apiThread: boolean
  /** `cluster` when Redis is configured: every shared store lives there. */
  readonly mode: 'embedded' | 'cluster'
}

/** With Kafka configured and PUSHLINE_SPOOL_MAX_BYTES unset: 1 GiB of uplinks may wait for Kafka. */
export const DEFAULT_SPOOL_MAX_BYTES = 1024 ** 3

export type Environment = Readonly<Record<string, string | undefined>>

/**
 * Reads and validates every setting once. A bad configuration throws one error that lists every problem.
 * This is the only place that reads the process environment.
 */
export function loadConfig (env: Environment = process.env): Config {
  const problems: string[] = []
  const values: Record<string, unknown> = {}
  for (const [key, s] of Object.entries(settings)) {
    const raw = env[s.env]
    if (raw === undefined || raw.trim() === '') {
      values[key] = s.fallback()
      continue
    }
    try {
      values[key] = s.parse(raw)
    } catch (err) {
      if (!(err instanceof SettingValueError)) throw err
      problems.push(`${s.env} ${err.message}`)
    }
  }
  const v = values as unknown as Values
  const parsed = (key: keyof Settings): boolean => key in values

  // Checks across settings run on whatever parsed, so one error lists every problem at once.
  {
    const redisParsed = parsed('redisUrl') && parsed('redisSentinels') && parsed('redisSentinelMaster')
    const sentinels = v.redisSentinels !== undefined
    if (redisParsed) {
      if (v.redisUrl !== undefined && sentinels) {
        problems.push('PUSHLINE_REDIS_URL and PUSHLINE_REDIS_SENTINELS are two ways to reach Redis: set one, not both')
      }
      if (sentinels !== (v.redisSentinelMaster !== undefined)) {
        problems.push('PUSHLINE_REDIS_SENTINELS and PUSHLINE_REDIS_SENTINEL_MASTER go together: the Sentinels and the name of the primary they monitor')
      }
      if (v.redisSentinelPassword !== undefined && !sentinels) {
        problems.push('PUSHLINE_REDIS_SENTINEL_PASSWORD needs PUSHLINE_REDIS_SENTINELS')
      }
      if (v.redisPassword !== undefined && v.redisUrl === undefined && !sentinels) {
        problems.push('PUSHLINE_REDIS_PASSWORD needs PUSHLINE_REDIS_URL or PUSHLINE_REDIS_SENTINELS')
      }
      if (parsed('role') && v.role !== 'all' && v.redisUrl === undefined && !sentinels) {
        problems.push(`PUSHLINE_ROLE=${v.role} runs the platform as separate processes, which share state through Redis: set PUSHLINE_REDIS_URL (or PUSHLINE_REDIS_SENTINELS)`)
      }
      if (parsed('apiThread') && v.apiThread === true && v.redisUrl === undefined && !sentinels) {
        problems.push('PUSHLINE_API_THREAD=true needs PUSHLINE_REDIS_URL (or PUSHLINE_REDIS_SENTINELS): the API thread and the broker thread share their state through Redis, and the in-memory stores of embedded mode live in one thread')
      }
    }
    if (parsed('allowAnonymous') && parsed('allowAnonymousShared') && parsed('redisUrl') && v.allowAnonymous && !v.allowAnonymousShared && v.redisUrl !== undefined) {
      problems.push('PUSHLINE_ALLOW_ANONYMOUS with PUSHLINE_REDIS_URL would let clients without credentials into a shared deployment: turn it off, or set PUSHLINE_ALLOW_ANONYMOUS_SHARED=true to allow it explicitly')
    }
    if (parsed('tlsCertFile') && parsed('tlsKeyFile') && (v.tlsCertFile === undefined) !== (v.tlsKeyFile === undefined)) {
      problems.push('PUSHLINE_TLS_CERT_FILE and PUSHLINE_TLS_KEY_FILE go together: set both to enable TLS, or neither')
    }
    if (parsed('tlsCaFile') && parsed('tlsCertFile') && v.tlsCaFile !== undefined && v.tlsCertFile === undefined) {
      problems.push('PUSHLINE_TLS_CA_FILE needs PUSHLINE_TLS_CERT_FILE and PUSHLINE_TLS_KEY_FILE')
    }
    if (parsed('tlsClientCaFile') && parsed('tlsCertFile') && v.tlsClientCaFile !== undefined && v.tlsCertFile === undefined) {
      problems.push('PUSHLINE_TLS_CLIENT_CA_FILE needs PUSHLINE_TLS_CERT_FILE and PUSHLINE_TLS_KEY_FILE: client certificates are asked for on the TLS listeners')
    }
    if (parsed('tlsClientCrlFile') && parsed('tlsClientCaFile') && v.tlsClientCrlFile !== undefined && v.tlsClientCaFile === undefined) {
      problems.push('PUSHLINE_TLS_CLIENT_CRL_FILE needs PUSHLINE_TLS_CLIENT_CA_FILE')
    }
    const tls = parsed('tlsCertFile') && v.tlsCertFile !== undefined
    const ports = ([['PUSHLINE_MQTT_PORT', 'mqttPort'], ['PUSHLINE_WS_PORT', 'wsPort'], ['PUSHLINE_HTTP_PORT', 'httpPort'],
      ...(tls ? [['PUSHLINE_MQTTS_PORT', 'mqttsPort'], ['PUSHLINE_WSS_PORT', 'wssPort']] as const : [])] as const)
      .filter(([, key]) => parsed(key)).map(([name, key]) => [name, v[key]] as const)
    for (let i = 0; i < ports.length; i++) {
      for (let j = i + 1; j < ports.length; j++) {
        const [a, pa] = ports[i] as readonly [string, number]
        const [b, pb] = ports[j] as readonly [string, number]
        if (pa !== 0 && pa === pb) problems.push(`${a} and ${b} are both ${pa}: each listener needs its own port`)
      }
    }
  }
  if (problems.length > 0) {
    throw new PushlineError('IOT_ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`)
  }

  const adminKeyGenerated = v.adminKeys === undefined
  const redis = redisTarget(v)
  return Object.freeze({
    ...v,
    redis,
    redisSentinels: v.redisSentinels === undefined ? undefined : Object.freeze([...v.redisSentinels]),
    kafkaBrokers: v.kafkaBrokers === undefined ? undefined : Object.freeze([...v.kafkaBrokers]),
    spoolMaxBytes: v.spoolMaxBytes === undefined ? (v.kafkaBrokers === undefined ? undefined : DEFAULT_SPOOL_MAX_BYTES) : v.spoolMaxBytes === 0 ? undefined : v.spoolMaxBytes,
    nodeId: v.nodeId ?? `node-${randomUUID().slice(0, 8)}`,
    adminKeys: Object.freeze(v.adminKeys ?? [randomBytes(24).toString('base64url')]),
    adminKeyGenerated,
    apiThread: v.role === 'all' && redis !== undefined && v.apiThread !== false,
    mode: redis === undefined ? 'embedded' : 'cluster'
  })
}

function redisTarget (v: Values): RedisTarget | undefined {
  if (v.redisUrl !== undefined) return Object.freeze({ kind: 'url', url: v.redisUrl, password: v.redisPassword, commandTimeoutMs: v.redisCommandTimeoutMs })
  if (v.redisSentinels === undefined || v.redisSentinelMaster === undefined) return undefined
  return Object.freeze({
    kind: 'sentinel',
    sentinels: Object.freeze(v.redisSentinels.map((hp) => {
      const i = hp.lastIndexOf(':')
      return Object.freeze({ host: hp.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(hp.slice(i + 1)) })
    })),
    master: v.redisSentinelMaster,
    password: v.redisPassword,
    sentinelPassword: v.redisSentinelPassword,
    commandTimeoutMs: v.redisCommandTimeoutMs
  })
}
