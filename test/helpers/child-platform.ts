import type { TestContext } from 'node:test'
import { ADMIN_KEY } from './platform.ts'
import { startPlatformProcess, type PlatformProcess } from './process.ts'

// The platform as a real process (`node --import tsx src/main.ts`) with the test admin key, for tests that kill it.

export interface ChildPlatform extends PlatformProcess {
  readonly httpUrl: string
  readonly mqttUrl: string
  /** createDevice + token over the admin and registry API. */
  provision (id: string): Promise<string>
}

/** Starts the platform with `env` on port 0 and waits for its start-up lines. */
export async function startChildPlatform (t: TestContext, env: Record<string, string>): Promise<ChildPlatform> {
  const p = await startPlatformProcess(t, { PUSHLINE_ADMIN_KEYS: ADMIN_KEY, ...env })
  const httpUrl = `http://127.0.0.1:${p.httpPort}`
  const post = async (path: string, body: unknown, headers: Record<string, string>): Promise<Record<string, unknown>> => {
    const res = await fetch(httpUrl + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
    return await res.json() as Record<string, unknown>
  }
  return {
    ...p,
    httpUrl,
    mqttUrl: `mqtt://127.0.0.1:${p.mqttPort}`,
    async provision (id) {
      const { secret } = await post('/v1/admin/devices', { id }, { authorization: `Bearer ${ADMIN_KEY}` })
      const { token } = await post(`/v1/devices/${id}/token`, { secret }, {})
      return token as string
    }
  }
}
