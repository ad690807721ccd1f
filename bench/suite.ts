// The benchmark suite (npm run bench): brings up Redis and Kafka (scripts/services.sh, or the running ones from
// .services/env), runs every scenario one after the other as a child process with --summary and a time budget,
// and writes one report, bench-results/report-<run>.md and .json: per figure ours, the reference measured in
// the same run (Mosquitto where the scenario has one), the ratio, and the target with met / not met.
//
//   npm run bench                                   # every scenario at full size (serialize: flock /tmp/pushline-bench.lock npm run bench)
//   npm run bench -- --quick                        # small sizes: a smoke run, about a minute
//   npm run bench -- --only connect-rate,idle-connections --max-seconds 1800
//
// A missed target is a figure, not a failure: the suite exits 0 when every scenario that ran wrote its summary,
// 1 when one crashed, timed out or wrote none (so a smoke run notices a benchmark that rotted).

import { spawn } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildPushline, startPushline, type PushlineProcess } from './lib/brokers.ts'
import { deleteRedisPrefix } from './lib/devices.ts'
import { choiceList, intOption, isAlive, onCleanup, runBench, setDeadline, track, writeReport } from './lib/lifecycle.ts'
import { ensureServices, type Services } from './lib/services.ts'
import { fmt, machineInfo } from './lib/stats.ts'
import { figure, type BenchSummary, type SummaryFigure } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const TSX_LOADER = import.meta.resolve('tsx')

/** A benchmark script run with --summary; quick args are its smoke sizes. */
interface ScriptScenario {
  readonly kind: 'script'
  readonly name: string
  readonly script: string
  readonly args: readonly string[]
  /** Smoke sizes; a function when they depend on the options the script offers (read from its --help; a script with fixed ones takes --main). */
  readonly quickArgs: readonly string[] | ((help: string) => string[])
  readonly budgetSeconds: number
}

/** A devices-sim scenario file, played against a three-node cluster the suite starts. */
interface SimScenario {
  readonly kind: 'sim'
  readonly name: string
  readonly file: string
  readonly budgetSeconds: number
}

type Scenario = ScriptScenario | SimScenario

const killsNode = (file: string): boolean => /fail|kill/i.test(basename(file))

/** Small sizes for scripts written elsewhere: --quick if they have it, else whichever size options they offer. */
function quickFromHelp (help: string): string[] {
  if (/--quick\b/.test(help)) return ['--quick']
  // Options of bench/broadcast.ts and bench/push-batch.ts (written in parallel): a few hundred devices on two nodes.
  const candidates: Array<[string, string]> = [['--devices', '600'], ['--online', '200'], ['--nodes', '2'], ['--rounds', '1'], ['--warmup', '0'], ['--equal', '0']]
  return candidates.filter(([flag]) => new RegExp(`${flag}\\b`).test(help)).flat()
}

function scenarios (): Scenario[] {
  const list: Scenario[] = [
    {
      kind: 'script',
      name: 'connect-rate',
      script: 'bench/connect-rate.ts',
      args: ['--connects', '10000', '--rounds', '3', '--targets', 'mosquitto,pushline-redis,node-floor'],
      quickArgs: ['--connects', '300', '--rounds', '1', '--warmup', '0', '--targets', 'mosquitto,pushline-redis'],
      budgetSeconds: 900
    },
    {
      kind: 'script',
      name: 'uplink-throughput',
      script: 'bench/uplink-throughput.ts',
      args: ['--setups', 'kafka', '--rounds', '3'],
      quickArgs: ['--setups', 'kafka', '--devices', '5', '--messages', '100', '--rounds', '1', '--warmup', '0'],
      budgetSeconds: 600
    },
    {
      kind: 'script',
      name: 'cross-node-latency',
      script: 'bench/cross-node-latency.ts',
      args: ['--rates', '1000,5000,10000', '--qos', '1'],
      quickArgs: ['--rates', '500', '--target-rate', '500', '--qos', '1', '--seconds', '1', '--warmup-seconds', '0', '--subscribers', '10', '--churn-clients', '0', '--drain-ms', '500'],
      budgetSeconds: 600
    },
    {
      kind: 'script',
      name: 'idle-connections',
      script: 'bench/idle-connections.ts',
      args: [],
      quickArgs: ['--connections', '300', '--cluster-connections', '400', '--nodes', '2', '--settle-ms', '200'],
      budgetSeconds: 900
    },
    {
      kind: 'script',
      name: 'flood',
      script: 'bench/flood.ts',
      args: ['--publishers', '1000', '--seconds', '15'],
      quickArgs: ['--publishers', '20', '--seconds', '2'],
      budgetSeconds: 600
    },
    { kind: 'script', name: 'broadcast', script: 'bench/broadcast.ts', args: [], quickArgs: quickFromHelp, budgetSeconds: 900 },
    { kind: 'script', name: 'push-batch', script: 'bench/push-batch.ts', args: [], quickArgs: quickFromHelp, budgetSeconds: 900 }
  ]
  const simDir = join(ROOT, 'devices-sim/scenarios')
  if (existsSync(simDir)) {
    // A scenario that kills a node goes last: the others need all three.
    const files = readdirSync(simDir).filter((f) => /\.(json|ya?ml)$/.test(f)).sort((a, b) => Number(killsNode(a)) - Number(killsNode(b)) || a.localeCompare(b))
    for (const file of files) {
      list.push({ kind: 'sim', name: `sim:${basename(file).replace(/\.(json|ya?ml)$/, '')}`, file: join(simDir, file), budgetSeconds: 300 })
    }
  }
  return list
}

const USAGE = `usage: npm run bench -- [options]        (= npx tsx bench/suite.ts)

  --only LIST         comma-separated scenario names (default: all); known: ${scenarios().map((s) => s.name).join(', ')}
  --quick             small sizes (a smoke run, not figures to quote)
  --max-seconds N     the whole suite's time budget (default 3600; --quick 600); each scenario gets at most its
                      own budget and what is left, and is stopped when it runs over
  --out-dir PATH      where the report and the per-scenario logs and summaries go (default bench-results)
  --help

Scenario status in the report: ok (summary written), skipped (script absent, or no time left), failed (exit
code != 0 or no summary), timeout. Targets missed are reported, never a failure.`

interface Args {
  readonly only: readonly string[] | undefined
  readonly quick: boolean
  readonly maxSeconds: number
  readonly outDir: string
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'max-seconds': { type: 'string' },
      'out-dir': { type: 'string', default: join(ROOT, 'bench-results') },
      help: { type: 'boolean', default: false }
    },
    strict: true
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  const known = scenarios().map((s) => s.name)
  const only = values.only === undefined ? undefined : choiceList('only', values.only, known, 'scenario')
  return {
    only,
    quick: values.quick,
    maxSeconds: intOption('max-seconds', values['max-seconds'] ?? (values.quick ? '600' : '3600'), 30, 7 * 24 * 3600),
    outDir: resolve(values['out-dir'])
  }
}

interface ScenarioRecord {
  readonly name: string
  readonly status: 'ok' | 'skipped' | 'failed' | 'timeout'
  readonly command: string | null
  readonly seconds: number
  readonly exitCode: number | null
  readonly log: string | null
  readonly summary: BenchSummary | null
  readonly note: string | null
}

const log = (line: string): void => { process.stderr.write(`bench suite: ${line}\n`) }

/** Runs `node --import tsx <script> ...args`, output to `logFile`; stopped (SIGTERM, then SIGKILL) after `seconds`. */
function runChild (script: string, args: readonly string[], logFile: string, seconds: number, env: NodeJS.ProcessEnv = process.env): Promise<{ exitCode: number | null, timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile)
    out.once('error', reject)
    const child = track(spawn(process.execPath, ['--import', TSX_LOADER, script, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }))
    child.stdout.pipe(out, { end: false })
    child.stderr.pipe(out, { end: false })
    let timedOut = false
    const kill = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      setTimeout(() => { if (isAlive(child)) child.kill('SIGKILL') }, 30_000).unref()
    }, seconds * 1000)
    child.once('error', (err) => { clearTimeout(kill); out.end(); reject(err) })
    child.once('exit', (code) => {
      clearTimeout(kill)
      out.end(() => resolve({ exitCode: code, timedOut }))
    })
  })
}

function helpOf (script: string): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const child = track(spawn(process.execPath, ['--import', TSX_LOADER, script, '--help'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }))
    child.stdout.on('data', (c: Buffer) => { text += c.toString('utf8') })
    child.stderr.on('data', (c: Buffer) => { text += c.toString('utf8') })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.once('exit', () => { clearTimeout(timer); resolve(text) })
  })
}

async function readSummary (path: string): Promise<BenchSummary | null> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as BenchSummary
    return Array.isArray(s.figures) ? s : null
  } catch {
    return null
  }
}

function tail (file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

async function runScript (s: ScriptScenario, args: Args, dir: string, seconds: number, main: () => Promise<string>): Promise<ScenarioRecord> {
  const script = join(ROOT, s.script)
  if (!existsSync(script)) return { name: s.name, status: 'skipped', command: null, seconds: 0, exitCode: null, log: null, summary: null, note: `${s.script} does not exist (yet)` }
  // Scripts written elsewhere are asked for their options; the suite's own are known.
  const help = typeof s.quickArgs === 'function' ? await helpOf(script) : '--main'
  const extra = args.quick ? (typeof s.quickArgs === 'function' ? s.quickArgs(help) : s.quickArgs) : s.args
  const summaryPath = join(dir, `${s.name}.summary.json`)
  // One build of the platform for every script that can take it, instead of one compile per script.
  const childArgs = [...extra, ...(/--main\b/.test(help) ? ['--main', await main()] : []), '--summary', summaryPath, '--max-seconds', String(seconds)]
  const logFile = join(dir, `${s.name}.log`)
  const command = `npx tsx ${s.script} ${childArgs.join(' ')}`
  log(`${s.name}: ${command}`)
  const t0 = performance.now()
  const { exitCode, timedOut } = await runChild(script, childArgs, logFile, seconds + 30)
  const summary = await readSummary(summaryPath)
  const status = timedOut ? 'timeout' : exitCode === 0 && summary !== null ? 'ok' : 'failed'
  if (status !== 'ok') log(`${s.name}: ${status} (exit code ${exitCode}${summary === null ? ', no summary' : ''}); log ${logFile}:\n${tail(logFile)}`)
  return { name: s.name, status, command, seconds: (performance.now() - t0) / 1000, exitCode, log: logFile, summary, note: null }
}

interface SimCluster {
  readonly nodes: readonly PushlineProcess[]
  readonly nodeIds: readonly string[]
  stop (): Promise<void>
}

/** Three nodes sharing the suite's Redis and Kafka, for the simulator's scenarios (started once, on first use). */
async function startSimCluster (services: Services, runId: string, main: string): Promise<SimCluster> {
  const prefix = `bench-suite-${runId}:`
  onCleanup(`delete Redis keys ${prefix}*`, () => deleteRedisPrefix(services.redisUrl, prefix))
  const nodes: PushlineProcess[] = []
  for (const i of [0, 1, 2]) {
    const node = await startPushline({
      name: `suite-node-${i}`,
      main,
      redisUrl: services.redisUrl,
      redisPrefix: prefix,
      env: {
        PUSHLINE_NODE_ID: `suite-${runId}-${i}`,
        PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000',
        ...(services.kafkaBrokers !== undefined && { PUSHLINE_KAFKA_BROKERS: services.kafkaBrokers, PUSHLINE_KAFKA_TELEMETRY_TOPIC: `bench.suite.${runId}` })
      }
    })
    onCleanup(`stop ${node.name}`, () => node.stop())
    nodes.push(node)
  }
  return { nodes, nodeIds: nodes.map((_, i) => `suite-${runId}-${i}`), stop: async () => { await Promise.all(nodes.map((n) => n.stop())) } }
}

/** The parts of a devices-sim report (docs/devices-sim.md, "Report") that the suite lists. */
interface SimReport {
  readonly devices?: { readonly requested?: number, readonly connectedAtEnd?: number }
  readonly connectPhase?: { readonly connectsPerSecond?: number }
  readonly latencyMs?: Readonly<Record<string, { readonly count?: number, readonly p50?: number, readonly p99?: number }>>
  readonly uplinks?: { readonly ackedPerSecond?: number, readonly unconfirmed?: number }
  readonly downlinks?: { readonly lost?: number, readonly duplicates?: number }
  readonly memory?: { readonly rssPerDeviceBytes?: number }
}

/** Simulator figures: no reference broker; the only targets are the issue's "nothing lost". */
function simFigures (r: SimReport): SummaryFigure[] {
  const num = (n: number | undefined): number | null => n === undefined || !Number.isFinite(n) ? null : Math.round(n * 100) / 100
  const out: SummaryFigure[] = [
    figure({ name: `devices connected at the end (of ${r.devices?.requested ?? '?'})`, unit: 'devices', ours: num(r.devices?.connectedAtEnd) }),
    figure({ name: 'connect phase rate', unit: 'connects/s', ours: num(r.connectPhase?.connectsPerSecond) })
  ]
  for (const [what, h] of Object.entries(r.latencyMs ?? {})) {
    if ((h.count ?? 0) > 0) out.push(figure({ name: `${what} latency p99`, unit: 'ms', ours: num(h.p99) }), figure({ name: `${what} latency p50`, unit: 'ms', ours: num(h.p50) }))
  }
  if ((r.uplinks?.ackedPerSecond ?? 0) > 0) out.push(figure({ name: 'uplinks acknowledged per second', unit: 'uplinks/s', ours: num(r.uplinks?.ackedPerSecond) }))
  out.push(
    figure({ name: 'QoS 1 uplinks without PUBACK', unit: 'messages', ours: num(r.uplinks?.unconfirmed), target: '<= 0' }),
    figure({ name: 'downlinks lost', unit: 'messages', ours: num(r.downlinks?.lost), target: '<= 0' }),
    figure({ name: 'downlinks duplicated', unit: 'messages', ours: num(r.downlinks?.duplicates) }),
    figure({ name: 'simulator RSS per device', unit: 'bytes', ours: num(r.memory?.rssPerDeviceBytes) })
  )
  return out
}

async function runSim (s: SimScenario, args: Args, dir: string, seconds: number, cluster: () => Promise<SimCluster>): Promise<ScenarioRecord> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin?: Record<string, string> }
  const bin = pkg.bin?.['devices-sim']
  if (bin === undefined) return { name: s.name, status: 'skipped', command: null, seconds: 0, exitCode: null, log: null, summary: null, note: 'package.json has no devices-sim bin entry' }
  const c = await cluster()
  const node = c.nodes[0] as PushlineProcess
  const last = c.nodes.length - 1
  const victim = c.nodes[last] as PushlineProcess
  const file = s.name.replace(':', '-')
  const reportPath = join(dir, `${file}.report.json`)
  const simArgs = [
    '--url', node.httpUrl, '--admin-key', node.adminKey, '--scenario', s.file, '--report', reportPath,
    '--prefix', `${file}-${Date.now().toString(36)}`, '--credentials', join(dir, `${file}.credentials.json`), '--progress', '10s',
    ...(killsNode(s.file) ? ['--kill-node', c.nodeIds[last] as string, '--kill-pid', String(victim.pid)] : []),
    ...(args.quick ? ['--devices', '20', '--duration', '3s'] : [])
  ]
  const logFile = join(dir, `${file}.log`)
  const command = `node ${bin} ${simArgs.join(' ')}`
  log(`${s.name}: ${command}`)
  const t0 = performance.now()
  const { exitCode, timedOut } = await runChild(join(ROOT, bin), simArgs, logFile, seconds)
  let report: SimReport | undefined
  try { report = JSON.parse(await readFile(reportPath, 'utf8')) as SimReport } catch { report = undefined }
  const summary: BenchSummary | null = report === undefined
    ? null
    : { scenario: s.name, command, at: new Date().toISOString(), figures: simFigures(report), notes: [`devices-sim report: ${relative(ROOT, reportPath)}; exit code ${exitCode}${exitCode === 1 ? ' (a threshold of the scenario was exceeded or an action failed)' : ''}`] }
  const status = timedOut ? 'timeout' : summary === null ? 'failed' : 'ok'
  if (status !== 'ok') log(`${s.name}: ${status}; log ${logFile}:\n${tail(logFile)}`)
  return { name: s.name, status, command, seconds: (performance.now() - t0) / 1000, exitCode, log: logFile, summary, note: null }
}

const cell = (n: number | null | undefined, digits = 2): string => n === null || n === undefined ? '-' : Number.isInteger(n) ? n.toLocaleString('en-US') : fmt(n, digits)

/** The Markdown report: one row per figure, then what did not run. */
function renderMarkdown (run: { runId: string, startedAt: string, quick: boolean, machine: ReturnType<typeof machineInfo> }, records: readonly ScenarioRecord[]): string {
  const lines = [
    `# Pushline benchmark report ${run.runId}`,
    '',
    `${run.startedAt}, ${run.machine.cpus} x ${run.machine.cpuModel}, ${Math.round(run.machine.totalMemoryMiB / 1024)} GiB, Node ${run.machine.node}${run.quick ? ' — **quick run: smoke sizes, not figures to quote**' : ''}.`,
    'Reference: Mosquitto (Debian) measured in the same run where the scenario has one; ratio = ours / reference.',
    '',
    '| scenario | figure | ours | reference | ratio | target | met |',
    '|---|---|---|---|---|---|---|'
  ]
  for (const r of records) {
    for (const f of r.summary?.figures ?? []) {
      const unit = f.unit === '' ? '' : ` ${f.unit}`
      lines.push(`| ${r.name} | ${f.name} | ${cell(f.ours)}${f.ours === null ? '' : unit} | ${f.reference === undefined || f.reference === null ? '-' : cell(f.reference) + unit} | ${f.ratio === undefined || f.ratio === null ? '-' : `${fmt(f.ratio, 2)}x`} | ${f.target ?? '-'} | ${f.met === undefined ? '-' : f.met ? 'met' : '**not met**'} |`)
    }
  }
  lines.push('', '| scenario | status | seconds | command / note |', '|---|---|---|---|')
  for (const r of records) lines.push(`| ${r.name} | ${r.status} | ${fmt(r.seconds, 0)} | ${r.command === null ? r.note ?? '' : `\`${r.command}\``} |`)
  const notes = records.flatMap((r) => (r.summary?.notes ?? []).map((n) => `- ${r.name}: ${n}`))
  if (notes.length > 0) lines.push('', '## Notes', '', ...notes)
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline((args.maxSeconds + 120) * 1000)
  const started = Date.now()
  const startedAt = new Date(started).toISOString()
  const runId = startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  const dir = join(args.outDir, `suite-${runId}`)
  const selected = scenarios().filter((s) => args.only === undefined || args.only.includes(s.name))
  await mkdir(dir, { recursive: true })
  log(`run ${runId}${args.quick ? ' (quick)' : ''}: ${selected.map((s) => s.name).join(', ')}; budget ${args.maxSeconds} s; logs in ${relative(ROOT, dir)}`)

  // Services once for every scenario; the children find .services/env and reuse them.
  const services = await ensureServices(ROOT)
  onCleanup('services', async () => {
    if (services.startedHere) log('stopping the services this run started (scripts/services.sh down)')
    await services.stop()
  })
  let build: Promise<string> | undefined
  const mainJs = (): Promise<string> => { build ??= buildPushline(ROOT, join(ROOT, 'bench-results/build')); return build }
  let simCluster: Promise<SimCluster> | undefined
  const cluster = async (): Promise<SimCluster> => { simCluster ??= startSimCluster(services, runId, await mainJs()); return await simCluster }

  const records: ScenarioRecord[] = []
  for (const s of selected) {
    const left = args.maxSeconds - (Date.now() - started) / 1000
    const budget = Math.floor(Math.min(args.quick ? 180 : s.budgetSeconds, left))
    if (budget < 20) {
      records.push({ name: s.name, status: 'skipped', command: null, seconds: 0, exitCode: null, log: null, summary: null, note: `no time left (--max-seconds ${args.maxSeconds})` })
      continue
    }
    const record = s.kind === 'script' ? await runScript(s, args, dir, budget, mainJs) : await runSim(s, args, dir, budget, cluster)
    records.push(record)
    log(`${s.name}: ${record.status}${record.note === null ? '' : ` (${record.note})`} in ${fmt(record.seconds, 0)} s`)
  }
  if (simCluster !== undefined) await (await simCluster).stop()

  const machine = machineInfo()
  const jsonPath = join(args.outDir, `report-${runId}.json`)
  const mdPath = join(args.outDir, `report-${runId}.md`)
  await writeReport(jsonPath, { runId, startedAt, finishedAt: new Date().toISOString(), quick: args.quick, machine, scenarios: records })
  const markdown = renderMarkdown({ runId, startedAt, quick: args.quick, machine }, records)
  await writeFile(mdPath, markdown)
  process.stdout.write(markdown + `\nwritten: ${relative(process.cwd(), mdPath)}, ${relative(process.cwd(), jsonPath)}\n`)
  // Again at the very end, where a caller that keeps only the last lines of the output still sees why.
  const failed = records.filter((r) => r.status === 'failed' || r.status === 'timeout')
  for (const r of failed) log(`${r.name}: ${r.status} (exit code ${r.exitCode}${r.summary === null ? ', no summary' : ''}); log ${r.log ?? '-'}:\n${r.log === null ? '' : tail(r.log, 25)}`)
  if (failed.length > 0) process.exitCode = 1
}

await runBench(main, USAGE)
