// Broker processes for benchmarks: Pushline (the compiled platform, as `npm start` runs it) and Mosquitto
// (the reference), both on 127.0.0.1 and on free ports, each with its output in a log file. Every process is
// registered with lifecycle.track(), so none outlives the benchmark.

import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { onCpus } from './cpu-affinity.ts'
import { isAlive, track } from './lifecycle.ts'
import { freePort, waitUntil } from './proc.ts'

export const BENCH_HOST = '127.0.0.1'

/** Node flags that write a CPU profile named `name` into bench-results/profiles/ under `root` at exit. */
export function cpuProfileArgs (root: string, name: string): string[] {
  return ['--cpu-prof', `--cpu-prof-dir=${join(root, 'bench-results/profiles')}`, `--cpu-prof-name=${name}.cpuprofile`]
}

export interface BrokerProcess {
  /** Short label for tables, e.g. "mosquitto" or "pushline-redis". */
  readonly name: string
  readonly pid: number
  readonly child: ChildProcess
  readonly host: string
  readonly mqttPort: number
  /** stdout and stderr of the process. */
  readonly logFile: string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves to the exit code (null after a signal). Idempotent. */
  stop (graceMs?: number): Promise<number | null>
  /**
   * Undefined while the process runs or when it exited because of stop(); otherwise why it ended, with the
   * tail of its log. A process that ended by itself keeps its temp dir (and log) after stop().
   */
  unexpectedExit (): string | undefined
}

export interface PushlineProcess extends BrokerProcess {
  readonly httpUrl: string
  readonly adminKey: string
  /** Set in Redis mode. */
  readonly redisPrefix: string | undefined
  readonly dataDir: string
  /** What the process printed on stdout so far (its start-up lines). */
  output (): string
}

export interface StartPushlineOptions {
  readonly name: string
  /** The compiled entry, e.g. dist/src/main.js (see buildPushline). */
  readonly main: string
  /** Redis mode when set; embedded (in memory) otherwise. */
  readonly redisUrl?: string
  readonly redisPrefix?: string
  /** Extra PUSHLINE_* settings; they win over the defaults chosen here. */
  readonly env?: Readonly<Record<string, string>>
  /** Node flags after the ones `npm start` uses (package.json's start script), e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  readonly nodeArgs?: readonly string[]
  /** Arguments after the entry (for a host script that loads the build, e.g. bench/lib/api-host.ts). */
  readonly args?: readonly string[]
  readonly startTimeoutMs?: number
  /** Keep the temp dir with the log after stop() (default: removed). */
  readonly keepLogs?: boolean
  /** The CPUs the process (all its threads) runs on, through taskset; default: wherever the scheduler puts it. */
  readonly cpus?: readonly number[]
}

export const BENCH_ADMIN_KEY = 'bench-admin-key-0123456789'

/** The node options `npm start` gives the platform (package.json's start script), so a benchmark runs it the same way. */
function npmStartNodeFlags (): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts?: Record<string, string> }
  const flags = /\bnode((?: --\S+)*) /.exec(pkg.scripts?.start ?? '')?.[1] ?? ''
  return flags.split(' ').filter((f) => f !== '')
}

/** Runs tsc on `project` (a tsconfig path relative to `root`) into `outDir`; returns `entry` inside it, which must exist. */
async function compile (root: string, project: string, outDir: string, entry: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, project), '--outDir', outDir],
      { cwd: root, timeout: 180_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`tsc failed:\n${stdout}${stderr}`))
        else resolve()
      })
  })
  const path = join(outDir, entry)
  if (!existsSync(path)) throw new Error(`the build produced no ${path}`)
  return path
}

/**
 * Compiles src/ with tsconfig.build.json into `outDir` (inside the repo, so node_modules resolve) and returns
 * the path of main.js. A private outDir leaves dist/ to the tests and `npm start`.
 */
export async function buildPushline (root: string, outDir: string): Promise<string> {
  const main = await compile(root, 'tsconfig.build.json', outDir, 'src/main.js')
  // Static files tsc does not copy: the platform looks for them beside its compiled code.
  const dashboard = join(root, 'src/dashboard')
  if (existsSync(dashboard)) await cp(dashboard, join(outDir, 'src/dashboard'), { recursive: true })
  return main
}

/**
 * Compiles devices-sim with its own tsconfig into `outDir` and returns the path of its cli.js: a benchmark runs the
 * simulator as an install runs it (compiled), not through tsx, whose start-up and per-function wrappers cost the
 * load generator CPU that a benchmark on a shared machine takes from the platform.
 */
export async function buildSimulator (root: string, outDir: string): Promise<string> {
  return await compile(root, 'devices-sim/tsconfig.json', outDir, 'cli.js')
}

interface Stopper {
  (graceMs?: number): Promise<number | null>
  /** How the child ended before anyone asked it to stop; undefined while it runs or after stop(). */
  unexpected (): string | undefined
}

/** Stops a child: SIGTERM, SIGKILL after graceMs. */
function stopper (child: ChildProcess): Stopper {
  let requested = false
  let unexpected: string | undefined
  const exited = new Promise<number | null>((resolve) => {
    if (!isAlive(child)) resolve(child.exitCode)
    else {
      child.once('exit', (code, signal) => {
        if (!requested) unexpected = `exited by itself (code ${code}, signal ${signal})`
        resolve(code)
      })
    }
  })
  const stop = async (graceMs = 10_000): Promise<number | null> => {
    requested = true
    if (isAlive(child)) child.kill('SIGTERM')
    const timer = setTimeout(() => { if (isAlive(child)) child.kill('SIGKILL') }, graceMs)
    try {
      return await exited
    } finally {
      clearTimeout(timer)
    }
  }
  return Object.assign(stop, { unexpected: () => unexpected })
}

function tail (file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/** Environment without the caller's PUSHLINE_* settings, so a shell's configuration cannot leak into a benchmark. */
function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PUSHLINE_')) env[k] = v
  return env
}

/**
 * Starts the platform as a process (role all) on 127.0.0.1 with port 0 everywhere, and resolves once it has
 * printed its MQTT and HTTP addresses.
 */
export async function startPushline (opts: StartPushlineOptions): Promise<PushlineProcess> {
  const dir = await mkdtemp(join(tmpdir(), `pushline-bench-${opts.name}-`))
  const dataDir = join(dir, 'data')
  const logFile = join(dir, 'pushline.log')
  const log = createWriteStream(logFile)
  const env: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    PUSHLINE_ROLE: 'all',
    PUSHLINE_HOST: BENCH_HOST,
    PUSHLINE_PUBLIC_HOST: BENCH_HOST,
    PUSHLINE_MQTT_PORT: '0',
    PUSHLINE_WS_PORT: '0',
    PUSHLINE_HTTP_PORT: '0',
    PUSHLINE_DATA_DIR: dataDir,
    PUSHLINE_ADMIN_KEYS: BENCH_ADMIN_KEY,
    PUSHLINE_LOG_LEVEL: 'warn',
    // Benchmarks measure what a node can take: the protective connect-rate limit (default 5,000/s) is off.
    PUSHLINE_CONNECT_RATE_PER_SECOND: '0',
    ...(opts.redisUrl !== undefined && { PUSHLINE_REDIS_URL: opts.redisUrl, PUSHLINE_REDIS_PREFIX: opts.redisPrefix ?? 'pushline:' }),
    ...opts.env
  }
  const cmd = onCpus(opts.cpus, process.execPath, [...npmStartNodeFlags(), ...(opts.nodeArgs ?? []), resolvePath(opts.main), ...(opts.args ?? [])])
  const child = track(spawn(cmd.command, cmd.args, { env, stdio: ['ignore', 'pipe', 'pipe'] }))
  // The api role runs no broker and prints no MQTT address.
  const needsMqtt = env.PUSHLINE_ROLE !== 'api'
  child.stderr?.pipe(log)
  const stop = stopper(child)

  let mqttPort: number | undefined
  let httpPort: number | undefined
  let buffered = ''
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      log.write(chunk)
      const started = (): boolean => httpPort !== undefined && (mqttPort !== undefined || !needsMqtt)
      if (started()) return
      if (buffered.length < 65_536) buffered += chunk.toString('utf8')
      mqttPort ??= Number(/MQTT over TCP\s+mqtt:\/\/[^\s]+:(\d+)/.exec(buffered)?.[1]) || undefined
      httpPort ??= Number(/HTTP API\s+http:\/\/[^\s]+:(\d+)/.exec(buffered)?.[1]) || undefined
      if (started()) resolve()
    })
    child.once('exit', (code, signal) => reject(new Error(`pushline (${opts.name}) exited during start (code ${code}, signal ${signal})`)))
    child.once('error', reject)
  })
  const timeoutMs = opts.startTimeoutMs ?? 30_000
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([ready, new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`pushline (${opts.name}) did not print its addresses within ${timeoutMs} ms`)), timeoutMs) })])
  } catch (err) {
    await stop(2000)
    await closeLog(log)
    const message = `${(err as Error).message}\n--- ${logFile}:\n${tail(logFile)}`
    if (opts.keepLogs !== true) await rm(dir, { recursive: true, force: true })
    throw new Error(message)
  } finally {
    clearTimeout(timer)
  }

  return {
    name: opts.name,
    pid: child.pid as number,
    child,
    host: BENCH_HOST,
    mqttPort: mqttPort ?? 0,
    logFile,
    httpUrl: `http://${BENCH_HOST}:${httpPort as number}`,
    adminKey: env.PUSHLINE_ADMIN_KEYS as string,
    redisPrefix: opts.redisUrl === undefined ? undefined : env.PUSHLINE_REDIS_PREFIX,
    dataDir,
    output: () => buffered,
    async stop (graceMs) {
      const crashed = stop.unexpected() !== undefined
      const code = await stop(graceMs)
      await closeLog(log)
      await rm(opts.keepLogs === true || crashed ? dataDir : dir, { recursive: true, force: true })
      return code
    },
    unexpectedExit () {
      const why = stop.unexpected()
      return why === undefined ? undefined : `pushline (${opts.name}, pid ${child.pid}) ${why}; log ${logFile}:\n${tail(logFile)}`
    }
  }
}

function closeLog (log: WriteStream): Promise<void> {
  return new Promise((resolve) => { log.end(() => resolve()) })
}

export interface StartMosquittoOptions {
  readonly name?: string
  /** Default: /usr/sbin/mosquitto, else `mosquitto` on the PATH. */
  readonly binary?: string
  /** Extra mosquitto.conf lines, appended after the listener's. */
  readonly extraConfig?: readonly string[]
  readonly startTimeoutMs?: number
  /** Keep the temp dir with config and log after stop() (default: removed). */
  readonly keepLogs?: boolean
}

export function mosquittoBinary (): string {
  return existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto'
}

/** "2.0.11", from `mosquitto -h`. */
export function mosquittoVersion (binary = mosquittoBinary()): Promise<string> {
  return new Promise((resolve) => {
    execFile(binary, ['-h'], { timeout: 5000 }, (_err, stdout) => {
      resolve(/mosquitto version (\S+)/.exec(stdout)?.[1] ?? 'unknown')
    })
  })
}

/**
 * Starts Mosquitto on a free 127.0.0.1 port with anonymous access, no connection limit and no per-connection
 * log lines (Pushline logs at warn level in benchmarks, so neither side pays for connect logging).
 */
export async function startMosquitto (opts: StartMosquittoOptions = {}): Promise<BrokerProcess> {
  const name = opts.name ?? 'mosquitto'
  const dir = await mkdtemp(join(tmpdir(), 'mosquitto-bench-'))
  const port = await freePort(BENCH_HOST)
  const config = join(dir, 'mosquitto.conf')
  await writeFile(config, [
    `listener ${port} ${BENCH_HOST}`,
    'allow_anonymous true',
    'max_connections -1',
    'persistence false',
    'connection_messages false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    ...(opts.extraConfig ?? []),
    ''
  ].join('\n'))
  return await superviseBroker({ name, dir, port, command: opts.binary ?? mosquittoBinary(), args: ['-c', config], keepLogs: opts.keepLogs, startTimeoutMs: opts.startTimeoutMs })
}

/**
 * The least a Node.js process can do per authenticated connect (bench/lib/floor-broker.ts): the ceiling any
 * broker written for Node reaches on this machine, beside Pushline and Mosquitto in the same run.
 */
export async function startFloorBroker (opts: { redisUrl: string, redisPrefix: string, nodeArgs?: readonly string[], keepLogs?: boolean }): Promise<BrokerProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'floor-bench-'))
  const port = await freePort(BENCH_HOST)
  const script = resolvePath(import.meta.dirname, 'floor-broker.ts')
  return await superviseBroker({
    name: 'node-floor',
    dir,
    port,
    command: process.execPath,
    args: [...(opts.nodeArgs ?? []), '--import', 'tsx', script, String(port), opts.redisUrl, opts.redisPrefix],
    keepLogs: opts.keepLogs
  })
}

interface SupervisedBroker {
  readonly name: string
  /** Temp dir for the log, removed at stop unless kept. */
  readonly dir: string
  readonly port: number
  readonly command: string
  readonly args: readonly string[]
  readonly keepLogs?: boolean
  readonly startTimeoutMs?: number
}

/** Spawns a broker, logs its output into its dir, and waits until its MQTT port accepts connections. */
async function superviseBroker (opts: SupervisedBroker): Promise<BrokerProcess> {
  const { name, dir, port } = opts
  const logFile = join(dir, `${name}.log`)
  const log = createWriteStream(logFile)
  const child = track(spawn(opts.command, opts.args, { stdio: ['ignore', 'pipe', 'pipe'] }))
  child.stdout?.pipe(log)
  child.stderr?.pipe(log)
  const stop = stopper(child)
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve())
    child.once('error', reject)
  })
  const cleanup = async (): Promise<void> => {
    await closeLog(log)
    if (opts.keepLogs !== true && stop.unexpected() === undefined) await rm(dir, { recursive: true, force: true })
  }
  try {
    await spawned
    const up = await waitUntil(async () => {
      if (!isAlive(child)) throw new Error(`${name} exited during start (code ${child.exitCode})`)
      return await canConnect(BENCH_HOST, port)
    }, opts.startTimeoutMs ?? 10_000)
    if (!up) throw new Error(`${name} did not accept connections on ${BENCH_HOST}:${port}`)
  } catch (err) {
    await stop(2000)
    const message = `${(err as Error).message}\n--- ${logFile}:\n${tail(logFile)}`
    await cleanup()
    throw new Error(message)
  }
  return {
    name,
    pid: child.pid as number,
    child,
    host: BENCH_HOST,
    mqttPort: port,
    logFile,
    async stop (graceMs) {
      const code = await stop(graceMs)
      await cleanup()
      return code
    },
    unexpectedExit () {
      const why = stop.unexpected()
      return why === undefined ? undefined : `${name} (pid ${child.pid}) ${why}; log ${logFile}:\n${tail(logFile)}`
    }
  }
}

function canConnect (host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}
