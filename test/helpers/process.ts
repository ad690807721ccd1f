import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { waitUntil } from './eventually.ts'

// The platform as a user runs it: a real process, configured by environment variables, stopped by a signal.

export const ROOT = new URL('../../', import.meta.url).pathname

export interface PlatformProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

/** Spawns node with `args` in the repository root; killed with SIGKILL after the test if still running. */
export function runNode (t: TestContext, args: string[], env: Record<string, string>): PlatformProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  // 'close', not 'exit': at 'exit' the last lines the process wrote may still be unread in its pipes.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, stdout: () => out, stderr: () => err, exited }
}

export async function tempDir (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-proc-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** The port printed on a start-up line such as "  MQTT over TCP        mqtt://0.0.0.0:36485". */
export function printedPort (stdout: string, label: string): number {
  return Number(new RegExp(`${label}\\s+\\S+://[^:]+:(\\d+)`).exec(stdout)?.[1])
}

/** Starts `src/main.ts` through tsx and waits for its start-up lines. */
export async function startPlatformProcess (t: TestContext, env: Record<string, string>): Promise<PlatformProcess & { mqttPort: number, httpPort: number }> {
  const p = runNode(t, ['--import', 'tsx', 'src/main.ts'], {
    PUSHLINE_MQTT_PORT: '0',
    PUSHLINE_WS_PORT: '0',
    PUSHLINE_HTTP_PORT: '0',
    PUSHLINE_HOST: '127.0.0.1',
    PUSHLINE_LOG_LEVEL: 'warn',
    PUSHLINE_DATA_DIR: await tempDir(t),
    ...env
  })
  await waitUntil('start-up lines', () => p.stdout().includes('HTTP API') || p.child.exitCode !== null, 60_000, 50)
  if (p.child.exitCode !== null) throw new Error(`platform exited: ${p.stderr()}`)
  return { ...p, mqttPort: printedPort(p.stdout(), 'MQTT over TCP'), httpPort: printedPort(p.stdout(), 'HTTP API') }
}
