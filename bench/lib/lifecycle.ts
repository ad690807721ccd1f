// Keeps a benchmark from leaving anything behind: every child process it starts is registered with track(),
// every other undo step (temp dirs, Redis keys, services it started) with onCleanup(). runCleanup() runs the
// steps newest first, each bounded in time; SIGINT, SIGTERM and SIGHUP run it too, and a benchmark-wide
// deadline (setDeadline) aborts a run that hangs. As a last resort, exit kills every child still alive.

import type { ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

type CleanupStep = { readonly name: string, readonly fn: () => Promise<unknown> | unknown }

const children = new Set<ChildProcess>()
const steps: CleanupStep[] = []
const STEP_TIMEOUT_MS = 20_000
let installed = false
let cleaning: Promise<void> | undefined

/** Registers a child process: it is killed (SIGKILL) if it is still alive when this process exits. */
export function track<C extends ChildProcess> (child: C): C {
  install()
  children.add(child)
  child.once('exit', () => { children.delete(child) })
  return child
}

/** True while the child has neither exited nor been killed by a signal. */
export function isAlive (child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Registers an undo step; steps run newest first in runCleanup(). */
export function onCleanup (name: string, fn: () => Promise<unknown> | unknown): void {
  install()
  steps.push({ name, fn })
}

/** Runs every registered undo step once (newest first, each bounded), then kills the children still alive. */
export function runCleanup (): Promise<void> {
  cleaning ??= (async () => {
    for (const step of steps.splice(0).reverse()) {
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([
          Promise.resolve().then(step.fn),
          new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS) })
        ])
      } catch (err) {
        process.stderr.write(`bench: cleanup step "${step.name}" failed: ${(err as Error).message}\n`)
      } finally {
        clearTimeout(timer)
      }
    }
    killChildren('SIGKILL')
  })()
  return cleaning
}

/** Aborts the whole benchmark (cleanup, exit code 1) if it is still running after `ms`. */
export function setDeadline (ms: number): void {
  install()
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${Math.round(ms / 1000)} s (--max-seconds): aborting\n`)
    runCleanup().finally(() => process.exit(1))
  }, ms).unref()
}

function killChildren (signal: NodeJS.Signals): void {
  for (const child of children) {
    if (!isAlive(child)) continue
    try { child.kill(signal) } catch { /* already gone */ }
  }
}

function install (): void {
  if (installed) return
  installed = true
  process.once('exit', () => { killChildren('SIGKILL') })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, cleaning up\n`)
      runCleanup().finally(() => process.exit(130))
    })
  }
}

/** A bad command line: the runner prints the message and the usage, and exits 2. */
export class UsageError extends Error {}

/** Runs a benchmark's main, cleans up whatever it started, and sets the exit code (2 for bad usage, 1 for a failure). */
export async function runBench (main: () => Promise<void>, usage: string): Promise<void> {
  try {
    await main()
    await runCleanup()
  } catch (err) {
    if (err instanceof UsageError || String((err as { code?: unknown } | undefined)?.code ?? '').startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(err as Error).message}\n${usage}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`bench: failed: ${(err as Error).stack ?? String(err)}\n`)
      process.exitCode = 1
    }
    await runCleanup()
  }
}

/** Writes a benchmark's JSON report, creating its folder. */
export async function writeReport (path: string, report: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, JSON.stringify(report, null, 2) + '\n')
}

/** The items of a comma-separated option, blanks dropped. */
export function splitList (raw: string): string[] {
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

/** A comma-separated option whose items must be among `known` (`item` names one in errors); empty is a usage error. */
export function choiceList<T extends string> (name: string, raw: string, known: readonly T[], item = name): T[] {
  const items = splitList(raw)
  for (const i of items) if (!(known as readonly string[]).includes(i)) throw new UsageError(`unknown ${item} "${i}" (known: ${known.join(', ')})`)
  if (items.length === 0) throw new UsageError(`--${name} is empty`)
  return items as T[]
}

/**
 * A repeatable KEY=VALUE option of settings for the platform's processes; only PUSHLINE_* names (which the process's
 * own configuration checks), so a mistyped flag cannot pass for a setting.
 */
export function settingsOption (name: string, pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of pairs) {
    const m = /^(PUSHLINE_[A-Z0-9_]+)=(.*)$/.exec(pair)
    if (m === null) throw new Error(`--${name} takes PUSHLINE_NAME=value, got "${pair}"`)
    out[m[1] as string] = m[2] as string
  }
  return out
}

/** Parses an integer option within bounds, or throws a UsageError naming it. */
export function intOption (name: string, value: string, min: number, max: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`)
  return n
}

/**
 * The options every cluster benchmark takes, for parseArgs: the build to run (--main), the JSON result (--out,
 * default bench-results/<name>.json under root), the common summary (--summary), the time bound, --keep-logs, --help.
 */
export function commonOptions (root: string, name: string, maxSeconds: number) {
  return {
    main: { type: 'string' },
    out: { type: 'string', default: `${root}/bench-results/${name}.json` },
    summary: { type: 'string' },
    'max-seconds': { type: 'string', default: String(maxSeconds) },
    'keep-logs': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  } as const
}

/** Prints the usage and exits 0 when --help was given. */
export function exitOnHelp (help: boolean, usage: string): void {
  if (!help) return
  process.stdout.write(usage + '\n')
  process.exit(0)
}
