import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import type { TestContext } from 'node:test'
import { ADMIN_KEY } from './platform.ts'

// The platform as a real process (`node --import tsx src/main.ts`), for tests that kill it.

const ROOT = new URL('../../', import.meta.url).pathname

export interface ChildPlatform {
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<number | null>
  readonly httpUrl: string
  readonly mqttUrl: string
  stdout (): string
  /** createDevice + token over the admin and registry API. */
  provision (id: string): Promise<string>
}

async function waitFor (what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const port = (text: string, label: string): number => Number(new RegExp(`${label}\\s+\\S+://[^:]+:(\\d+)`).exec(text)?.[1])

/** Starts the platform with `env` on port 0 and waits for its start-up lines. */
export async function startChildPlatform (t: TestContext, env: Record<string, string>): Promise<ChildPlatform> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      PUSHLINE_HOST: '127.0.0.1',
      PUSHLINE_MQTT_PORT: '0',
      PUSHLINE_WS_PORT: '0',
      PUSHLINE_HTTP_PORT: '0',
      PUSHLINE_ADMIN_KEYS: ADMIN_KEY,
      PUSHLINE_SECRET_HASH_COST: '10',
      PUSHLINE_LOG_LEVEL: 'warn',
      ...env
    }
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  try {
    await waitFor('start-up lines', () => out.includes('HTTP API'), 30_000)
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstdout: ${out}\nstderr: ${err}`)
  }
  const httpUrl = `http://127.0.0.1:${port(out, 'HTTP API')}`
  const post = async (path: string, body: unknown, headers: Record<string, string>): Promise<Record<string, unknown>> => {
    const res = await fetch(httpUrl + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
    return await res.json() as Record<string, unknown>
  }
  return {
    child,
    exited,
    httpUrl,
    mqttUrl: `mqtt://127.0.0.1:${port(out, 'MQTT over TCP')}`,
    stdout: () => out,
    async provision (id) {
      const { secret } = await post('/v1/admin/devices', { id }, { authorization: `Bearer ${ADMIN_KEY}` })
      const { token } = await post(`/v1/devices/${id}/token`, { secret }, {})
      return token as string
    }
  }
}
