import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import pino from 'pino'
import { loadConfig } from '../../src/config/load-config.ts'
import { startPlatform, type Platform } from '../../src/main.ts'
import { redisUrl, uniquePrefix } from './services.ts'

export const ADMIN_KEY = 'test-admin-key-0123456789'

export interface TestPlatformOptions {
  /** Share Redis (and this key prefix) with other platforms: a cluster of nodes. */
  readonly clusterPrefix?: string
  /** How a cluster platform reaches Redis (default: the test Redis by URL); the HA tests pass the Sentinels. */
  readonly redisEnv?: Readonly<Record<string, string>>
  readonly env?: Readonly<Record<string, string>>
}

export interface TestPlatform extends Platform {
  readonly httpUrl: string
  readonly mqttUrl: string
  readonly wsUrl: string
  readonly dataDir: string
  /** Every log line the platform wrote, parsed. */
  readonly logs: Array<Record<string, unknown>>
  /** Raw log output, to check that secrets never appear in it. */
  logText (): string
  api (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number, body: any }> // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON responses
  createDevice (id: string, groups?: string[]): Promise<string>
  token (id: string, secret: string): Promise<string>
  /** createDevice + token. */
  provision (id: string, groups?: string[]): Promise<{ secret: string, token: string }>
  metric (name: string, labels?: Record<string, string>): Promise<number>
}

export { uniquePrefix }

/**
 * With PUSHLINE_TEST_STORES=redis (scripts/test.sh sets it for a second run of the suites that must hold in both
 * modes), a platform started without a cluster prefix gets Redis stores under a prefix of its own.
 */
function storesPrefix (opts: TestPlatformOptions): string | undefined {
  if (opts.clusterPrefix !== undefined) return opts.clusterPrefix
  return process.env.PUSHLINE_TEST_STORES === 'redis' ? uniquePrefix() : undefined
}

export async function startTestPlatform (t: TestContext, opts: TestPlatformOptions = {}): Promise<TestPlatform> {
  const dataDir = await mkdtemp(join(tmpdir(), 'pushline-test-'))
  const prefix = storesPrefix(opts)
  const config = loadConfig({
    PUSHLINE_HOST: '127.0.0.1',
    PUSHLINE_PUBLIC_HOST: '127.0.0.1',
    PUSHLINE_HTTP_PORT: '0',
    PUSHLINE_MQTT_PORT: '0',
    PUSHLINE_WS_PORT: '0',
    PUSHLINE_DATA_DIR: dataDir,
    PUSHLINE_ADMIN_KEYS: ADMIN_KEY,
    PUSHLINE_LOG_LEVEL: 'debug',
    ...(prefix !== undefined && { ...(opts.redisEnv ?? { PUSHLINE_REDIS_URL: redisUrl() }), PUSHLINE_REDIS_PREFIX: prefix }),
    // The Redis-stores run starts single platforms on Redis: the anonymous-mode tests opt in to that explicitly.
    ...(prefix !== undefined && opts.clusterPrefix === undefined && { PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true' }),
    // Role all in one thread: the tests reach its parts (platform.devices, platform.broker) and its logs in this
    // one; the API thread is covered by spawned processes (test/integration/api-thread.test.ts).
    PUSHLINE_API_THREAD: 'false',
    ...opts.env
  })
  const chunks: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { chunks.push(chunk.toString()); cb() } })
  const platform = await startPlatform(config, pino({ level: config.logLevel, base: { nodeId: config.nodeId } }, sink))
  t.after(async () => {
    await platform.close()
    await rm(dataDir, { recursive: true, force: true })
  })

  const httpUrl = `http://127.0.0.1:${platform.httpPort}`
  const api: TestPlatform['api'] = async (method, path, body, headers = { authorization: `Bearer ${ADMIN_KEY}` }) => {
    const res = await fetch(httpUrl + path, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
      ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) })
    })
    const text = await res.text()
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
  }
  const createDevice = async (id: string, groups: string[] = []): Promise<string> => {
    const res = await api('POST', '/v1/admin/devices', { id, groups })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return res.body.secret as string
  }
  const token = async (id: string, secret: string): Promise<string> => {
    const res = await api('POST', `/v1/devices/${id}/token`, { secret }, {})
    assert.equal(res.status, 200, JSON.stringify(res.body))
    return res.body.token as string
  }
  return {
    ...platform,
    httpUrl,
    mqttUrl: `mqtt://127.0.0.1:${platform.mqttPort ?? 0}`,
    wsUrl: `ws://127.0.0.1:${platform.wsPort ?? 0}/mqtt`,
    dataDir,
    get logs () { return chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) },
    logText: () => chunks.join(''),
    api,
    createDevice,
    token,
    async provision (id, groups) {
      const secret = await createDevice(id, groups)
      return { secret, token: await token(id, secret) }
    },
    async metric (name, labels = {}) {
      const res = await fetch(`${httpUrl}/metrics`)
      const text = await res.text()
      let sum = 0
      for (const line of text.split('\n')) {
        if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop())
      }
      return sum
    }
  }
}
