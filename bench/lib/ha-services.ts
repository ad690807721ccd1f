// The highly available services for benchmarks (`scripts/services.sh ha-up`): started when they are not running
// (and stopped again at the end), their addresses read from .services/ha/env, the current primary asked of the
// Sentinels.

import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { onCleanup } from './lifecycle.ts'

const run = promisify(execFile)

export type HaEnv = Record<string, string>

export function haServicesScript (root: string): string {
  return join(root, 'scripts/services.sh')
}

/** The HA services' env (PUSHLINE_TEST_HA_*), after starting them when `ha-status` says they are not all up. */
export async function ensureHaServices (root: string, log: (line: string) => void): Promise<HaEnv> {
  const script = haServicesScript(root)
  const envFile = join(root, '.services/ha/env')
  if (!existsSync(envFile) || await run('bash', [script, 'ha-status']).then(() => false, () => true)) {
    log('starting the HA services (scripts/services.sh ha-up)')
    await run('bash', [script, 'ha-up'], { timeout: 600_000 })
    onCleanup('stop the HA services', () => run('bash', [script, 'ha-down']))
  }
  return Object.fromEntries(readFileSync(envFile, 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
}

/** The port of the server the Sentinels name primary now. */
export async function sentinelPrimary (env: HaEnv): Promise<number> {
  const [host, port] = (env.PUSHLINE_TEST_HA_SENTINELS as string).split(',')[0]?.split(':') ?? []
  const { stdout } = await run('redis-cli', ['-h', host as string, '-p', port as string, '--raw', 'sentinel', 'get-master-addr-by-name', env.PUSHLINE_TEST_HA_SENTINEL_MASTER as string])
  return Number(stdout.trim().split('\n')[1])
}

/** The Pushline settings that reach Redis through the HA services' Sentinels. */
export function sentinelSettings (env: HaEnv): Record<string, string> {
  return {
    PUSHLINE_REDIS_SENTINELS: env.PUSHLINE_TEST_HA_SENTINELS as string,
    PUSHLINE_REDIS_SENTINEL_MASTER: env.PUSHLINE_TEST_HA_SENTINEL_MASTER as string
  }
}
