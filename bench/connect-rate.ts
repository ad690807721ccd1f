// Benchmark (prints figures; not a test): authenticated MQTT connects per second on one Pushline broker node,
// tokens checked against Redis, with Mosquitto's anonymous connect rate measured in the same run as the
// reference. Also Pushline in embedded mode (tokens in memory, issued over HTTP).
//
//   npx tsx bench/connect-rate.ts --connects 10000 --rounds 3 --workers 2
//   npx tsx bench/connect-rate.ts --help
//
// Each round opens --connects connections from --workers load generator processes (raw TCP, MQTT 3.1.1
// CONNECT, wait for CONNACK, --concurrency in flight per worker), holds them open, reads the broker's RSS,
// then closes them all (RST) and waits until the broker is idle again. Rounds alternate between the targets
// (A B C A B C ...), so drift on the machine hits every target alike; the figure per target is the median of
// its rounds. The rate is accepted connects divided by the time from the first CONNECT to the last connect
// settled. Besides the rate, each round records CPU use (broker, Redis, workers), accepted connects per
// broker CPU second (an efficiency figure that holds even when the load generator sets the pace), Redis
// commands per connect, latency percentiles, and the machine's TCP listen drops / SYN retransmits (non-zero
// means a full accept queue, not the broker, set the pace). Results: a table on stdout and
// bench-results/connect-rate.json. See bench/README.md.

import { randomUUID } from 'node:crypto'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildPushline, cpuProfileArgs, mosquittoVersion, startFloorBroker, startMosquitto, startPushline, type BrokerProcess } from './lib/brokers.ts'
import { prepareConnectLoad, MAX_CONNECTIONS_PER_WORKER, type ConnectCredentials, type ConnectLoadResult } from './lib/connect-load.ts'
import type { ConnectCounts } from './lib/connect-protocol.ts'
import { anonymousClients, deleteRedisPrefix, deviceClients, deviceIds, provisionOverHttp, seedRedisTokens } from './lib/devices.ts'
import { choiceList, commonOptions, exitOnHelp, onCleanup, runBench, setDeadline, UsageError, writeReport, intOption } from './lib/lifecycle.ts'
import { cpuSeconds, machineCpu, openFds, rssBytes, tcpExtCounters, waitForQuiet } from './lib/proc.ts'
import { ensureServices, redisCommandCalls, redisServerInfo } from './lib/services.ts'
import { fmt, fmtBytes, fmtInt, formatTable, machineInfo, median } from './lib/stats.ts'
import { figure, writeSummary } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const TARGETS = ['mosquitto', 'pushline-redis', 'pushline-embedded', 'node-floor'] as const
type TargetName = typeof TARGETS[number]

const USAGE = `usage: npx tsx bench/connect-rate.ts [options]

  --connects N        connects per round (default 10000, at most 18000: the broker's open-file limit)
  --rounds N          rounds per target (default 3); the figure is the median
  --warmup N          connects of an unrecorded first round per target (default 2000; 0: none), so JIT and
                      heap growth do not land in round 1
  --workers N         load generator processes (default 2)
  --concurrency N     connects in flight per worker (default 50; Mosquitto listens with a backlog of 100,
                      more in flight overflows its accept queue and SYN retransmits then set the pace)
  --targets LIST      comma-separated, of ${TARGETS.join(', ')} (default: all)
  --timeout-ms N      a connect without CONNACK after this long is a timeout (default 10000)
  --keepalive S       MQTT keepalive of the connections (default 300)
  --settle-ms N       wait after the last CONNACK before reading the broker's RSS (default 500)
  --main PATH         compiled platform entry to run (default: compile src/ into bench-results/build)
  --profile           run Pushline with --cpu-prof; profiles go to bench-results/profiles/
  --target-rate N     the goal for pushline-redis, connects/s (default 5000)
  --out PATH          JSON result (default bench-results/connect-rate.json)
  --summary PATH      also write the key figures in the suite's common shape (bench/lib/summary.ts)
  --max-seconds N     abort the whole run after this long (default 900)
  --keep-logs         keep the brokers' temp dirs with their logs
  --help`

interface Args {
  readonly connects: number
  readonly rounds: number
  readonly warmup: number
  readonly workers: number
  readonly concurrency: number
  readonly targets: readonly TargetName[]
  readonly timeoutMs: number
  readonly keepalive: number
  readonly settleMs: number
  readonly main: string | undefined
  readonly profile: boolean
  readonly targetRate: number
  readonly out: string
  readonly summary: string | undefined
  readonly maxSeconds: number
  readonly keepLogs: boolean
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      connects: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '2000' },
      workers: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '50' },
      targets: { type: 'string', default: TARGETS.join(',') },
      'timeout-ms': { type: 'string', default: '10000' },
      keepalive: { type: 'string', default: '300' },
      'settle-ms': { type: 'string', default: '500' },
      profile: { type: 'boolean', default: false },
      'target-rate': { type: 'string', default: '5000' },
      ...commonOptions(ROOT, 'connect-rate', 900)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const int = intOption
  const targets = choiceList('targets', values.targets, TARGETS, 'target')
  const args: Args = {
    connects: int('connects', values.connects, 1, 18_000),
    rounds: int('rounds', values.rounds, 1, 20),
    warmup: int('warmup', values.warmup, 0, 18_000),
    workers: int('workers', values.workers, 1, 8),
    concurrency: int('concurrency', values.concurrency, 1, 5000),
    targets: [...new Set(targets)],
    timeoutMs: int('timeout-ms', values['timeout-ms'], 100, 120_000),
    keepalive: int('keepalive', values.keepalive, 0, 65_535),
    settleMs: int('settle-ms', values['settle-ms'], 0, 60_000),
    main: values.main === undefined ? undefined : resolve(values.main),
    profile: values.profile,
    targetRate: int('target-rate', values['target-rate'], 1, 10_000_000),
    out: resolve(values.out),
    summary: values.summary === undefined ? undefined : resolve(values.summary),
    maxSeconds: int('max-seconds', values['max-seconds'], 10, 24 * 3600),
    keepLogs: values['keep-logs']
  }
  if (args.connects / args.workers > MAX_CONNECTIONS_PER_WORKER) throw new UsageError(`more than ${MAX_CONNECTIONS_PER_WORKER} connections per worker: raise --workers`)
  return args
}

interface RoundRecord extends ConnectCounts {
  readonly round: number
  readonly connectsPerSecond: number
  readonly wallSeconds: number
  readonly latencyMs: ConnectLoadResult['latencyMs']
  /** The broker was idle (sockets of the previous round closed, CPU under 5 %) before the round. */
  readonly quietBefore: boolean
  /** From closing every connection until the broker had closed them all and its CPU was idle; NaN: not within 60 s. */
  readonly quietAfterSeconds: number
  readonly rssBeforeBytes: number
  readonly rssAfterBytes: number
  /** (RSS with the connections open − lowest RSS of the idle broker so far) / accepted. */
  readonly rssPerConnectionBytes: number
  readonly brokerCpuSeconds: number
  /** Broker CPU seconds per wall second of the round (1.0 = one core busy). */
  readonly brokerCpuShare: number
  readonly redisCpuShare: number | undefined
  /**
   * Redis commands per connect during the round, by command (INFO commandstats; counts every client of that
   * Redis, so other users of it show up too). Commands of the disconnects come after the round and are not in it.
   */
  readonly redisCommandsPerConnect: Readonly<Record<string, number>> | undefined
  readonly workerCpuShare: number
  /** Kernel interrupt and softirq time during the round (mostly loopback TCP), per wall second: charged to no process. */
  readonly kernelIrqCpuShare: number
  /**
   * CPU the rest of the machine used during the round (all CPUs busy time − irq/softirq − broker − Redis −
   * workers), per wall second: this process, and anything else running (someone's tests, another benchmark).
   */
  readonly otherCpuShare: number
  /**
   * Machine-wide TCP counters during the round: connections dropped because the broker's accept queue was full,
   * and SYNs retransmitted (each adds >= 1 s to a connect). Non-zero means the load, not the broker, set the pace.
   */
  readonly tcp: { readonly listenDrops: number, readonly synRetransmits: number }
}

interface Target {
  readonly name: TargetName
  readonly description: string
  readonly broker: BrokerProcess
  readonly clients: ConnectCredentials[]
  /** Lowest RSS of the idle broker seen so far (after its start, and before each round): V8 gives memory back late. */
  idleRssBytes: number
  readonly idleFds: number
  readonly rounds: RoundRecord[]
}

const log = (line: string): void => { process.stderr.write(`bench: ${line}\n`) }

async function timed<T> (what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now()
  const out = await fn()
  log(`${what} (${fmt((performance.now() - t0) / 1000, 1)} s)`)
  return out
}

async function startTarget (name: TargetName, args: Args, ctx: { runId: string, main: () => Promise<string>, redis: () => Promise<{ url: string }> }): Promise<Omit<Target, 'idleRssBytes' | 'idleFds' | 'rounds'>> {
  const profileArgs = (label: string): string[] => args.profile ? cpuProfileArgs(ROOT, `connect-rate-${label}-${ctx.runId}`) : []
  switch (name) {
    case 'mosquitto': {
      const broker = await startMosquitto({ name, keepLogs: args.keepLogs })
      onCleanup(`stop ${name}`, () => broker.stop())
      const version = await mosquittoVersion()
      log(`mosquitto ${version} pid ${broker.pid} on ${broker.host}:${broker.mqttPort}`)
      return { name, description: `Mosquitto ${version}, anonymous (reference)`, broker, clients: anonymousClients(deviceIds(`m${ctx.runId}`, args.connects)) }
    }
    case 'pushline-redis': {
      const main = await ctx.main()
      const { url } = await ctx.redis()
      const prefix = `bench-${ctx.runId}:`
      // Registered before the broker's stop, so it runs after it (cleanup runs newest first).
      onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(url, prefix)} Redis keys under ${prefix}`) })
      const broker = await startPushline({ name, main, redisUrl: url, redisPrefix: prefix, nodeArgs: profileArgs(name), keepLogs: args.keepLogs })
      onCleanup(`stop ${name}`, () => broker.stop())
      log(`pushline (Redis ${url}, prefix ${prefix}) pid ${broker.pid} on ${broker.host}:${broker.mqttPort}`)
      const devices = await timed(`seeded ${fmtInt(args.connects)} tokens into Redis`, () =>
        seedRedisTokens({ redisUrl: url, prefix, deviceIds: deviceIds(`r${ctx.runId}`, args.connects) }))
      return { name, description: 'Pushline, one node, Redis mode: token GET per connect + aedes-persistence-redis + mqemitter-redis', broker, clients: deviceClients(devices) }
    }
    case 'node-floor': {
      const { url } = await ctx.redis()
      const prefix = `bench-floor-${ctx.runId}:`
      onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(url, prefix)} Redis keys under ${prefix}`) })
      const broker = await startFloorBroker({ redisUrl: url, redisPrefix: prefix, nodeArgs: profileArgs(name), keepLogs: args.keepLogs })
      onCleanup(`stop ${name}`, () => broker.stop())
      log(`node-floor (bench/lib/floor-broker.ts) pid ${broker.pid} on ${broker.host}:${broker.mqttPort}`)
      const devices = await timed(`seeded ${fmtInt(args.connects)} tokens into Redis`, () =>
        seedRedisTokens({ redisUrl: url, prefix, deviceIds: deviceIds(`f${ctx.runId}`, args.connects) }))
      return { name, description: 'Node floor: CONNECT parsed, one token GET in Redis, CONNACK; nothing else (bench/lib/floor-broker.ts)', broker, clients: deviceClients(devices) }
    }
    case 'pushline-embedded': {
      const main = await ctx.main()
      // Provisioning thousands of devices from one address: cheap secrets, and no per-address token rate limit.
      const env = { PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000' }
      const broker = await startPushline({ name, main, env, nodeArgs: profileArgs(name), keepLogs: args.keepLogs })
      onCleanup(`stop ${name}`, () => broker.stop())
      log(`pushline (embedded) pid ${broker.pid} on ${broker.host}:${broker.mqttPort}`)
      const devices = await timed(`provisioned ${fmtInt(args.connects)} devices and tokens over HTTP`, () =>
        provisionOverHttp({ httpUrl: broker.httpUrl, adminKey: broker.adminKey, deviceIds: deviceIds(`e${ctx.runId}`, args.connects) }))
      return { name, description: 'Pushline, one node, embedded mode: tokens and sessions in memory', broker, clients: deviceClients(devices) }
    }
  }
}

/** Throws, with the broker's log tail, if it ended by itself. */
function assertRunning (target: Target): void {
  const why = target.broker.unexpectedExit()
  if (why !== undefined) throw new Error(why)
}

/** Redis commands so far; a failure says that Redis went away, which on a shared machine is usually someone else's doing. */
async function commandCalls (url: string): Promise<Record<string, number>> {
  try {
    return await redisCommandCalls(url)
  } catch (err) {
    throw new Error(`Redis at ${url} stopped answering during the run (${(err as Error).message}): did \`npm test\` (services.sh down, or the Redis outage test) run meanwhile? Rerun when nothing else uses the services.`)
  }
}

async function runRound (target: Target, round: number, args: Args, redis: { url: string, pid: number } | undefined, clients = target.clients): Promise<RoundRecord> {
  const { broker } = target
  assertRunning(target)
  const quietBefore = await waitForQuiet(broker.pid, { maxFds: target.idleFds + 16, timeoutMs: 60_000 })
  if (!quietBefore) log(`warning: ${target.name} was not idle after 60 s; running round ${round} anyway`)
  const rssBeforeBytes = rssBytes(broker.pid)
  target.idleRssBytes = Math.min(target.idleRssBytes, rssBeforeBytes)
  const load = await prepareConnectLoad({
    host: broker.host,
    port: broker.mqttPort,
    clients,
    workers: args.workers,
    concurrency: args.concurrency,
    keepaliveSeconds: args.keepalive,
    connectTimeoutMs: args.timeoutMs
  })
  let result: ConnectLoadResult
  let brokerCpu: number
  let redisCpu: number | undefined
  let machineBusy: number
  let kernelIrq: number
  const redisCalls: Record<string, number> = {}
  let tcp0: Record<string, number>
  let tcp1: Record<string, number>
  try {
    const calls0 = redis === undefined ? undefined : await commandCalls(redis.url)
    const b0 = cpuSeconds(broker.pid)
    const r0 = redis === undefined ? 0 : cpuSeconds(redis.pid)
    const m0 = machineCpu()
    tcp0 = tcpExtCounters()
    result = await load.run()
    tcp1 = tcpExtCounters()
    const m1 = machineCpu()
    machineBusy = m1.busy - m0.busy
    kernelIrq = m1.interrupts - m0.interrupts
    assertRunning(target)
    brokerCpu = cpuSeconds(broker.pid) - b0
    if (redis !== undefined) redisCpu = cpuSeconds(redis.pid) - r0
    if (redis !== undefined && calls0 !== undefined) {
      const calls1 = await commandCalls(redis.url)
      for (const [cmd, n] of Object.entries(calls1)) {
        const d = n - (calls0[cmd] ?? 0)
        if (d > 0) redisCalls[cmd] = d
      }
    }
  } catch (err) {
    load.kill()
    throw err
  }
  await sleep(args.settleMs)
  const rssAfterBytes = rssBytes(broker.pid)
  const { droppedAfterConnack } = await load.release()
  // How long the broker takes to close and forget every connection (the disconnect storm), up to 60 s.
  const released = performance.now()
  const quietAfter = await waitForQuiet(broker.pid, { maxFds: target.idleFds + 16, timeoutMs: 60_000, windowMs: 100 })
  const quietAfterSeconds = quietAfter ? (performance.now() - released) / 1000 : Number.NaN
  const wall = result.wallSeconds
  return {
    round,
    connectsPerSecond: result.connectsPerSecond,
    wallSeconds: wall,
    attempted: result.attempted,
    accepted: result.accepted,
    refused: result.refused,
    errors: result.errors,
    timeouts: result.timeouts,
    errorSamples: result.errorSamples,
    droppedAfterConnack,
    latencyMs: result.latencyMs,
    quietBefore,
    quietAfterSeconds,
    rssBeforeBytes,
    rssAfterBytes,
    rssPerConnectionBytes: result.accepted === 0 ? Number.NaN : (rssAfterBytes - target.idleRssBytes) / result.accepted,
    brokerCpuSeconds: brokerCpu,
    brokerCpuShare: brokerCpu / wall,
    redisCpuShare: redisCpu === undefined ? undefined : redisCpu / wall,
    redisCommandsPerConnect: redis === undefined || result.attempted === 0
      ? undefined
      : Object.fromEntries(Object.entries(redisCalls).map(([cmd, n]) => [cmd, Math.round(100 * n / result.attempted) / 100] as const)
        .filter(([, perConnect]) => perConnect >= 0.05).sort((a, b) => b[1] - a[1])),
    workerCpuShare: result.workerCpuSeconds / wall,
    kernelIrqCpuShare: kernelIrq / wall,
    otherCpuShare: Math.max(0, machineBusy - kernelIrq - brokerCpu - (redisCpu ?? 0) - result.workerCpuSeconds) / wall,
    tcp: {
      listenDrops: (tcp1.ListenDrops ?? 0) - (tcp0.ListenDrops ?? 0),
      synRetransmits: (tcp1.TCPSynRetrans ?? 0) - (tcp0.TCPSynRetrans ?? 0)
    }
  }
}

interface TargetSummary {
  readonly connectsPerSecond: number
  /** Accepted connects per CPU second the broker used: efficiency, whatever set the pace. */
  readonly connectsPerBrokerCpuSecond: number
  readonly rssPerConnectionBytes: number
  readonly brokerCpuShare: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Over every round: connects not accepted (refused, failed, timed out) plus accepted ones dropped later. */
  readonly failed: number
  readonly listenDrops: number
  readonly otherCpuShare: number
}

function summarize (t: Target): TargetSummary {
  const m = (f: (r: RoundRecord) => number): number => median(t.rounds.map(f))
  return {
    connectsPerSecond: m((r) => r.connectsPerSecond),
    connectsPerBrokerCpuSecond: m((r) => r.brokerCpuSeconds > 0 ? r.accepted / r.brokerCpuSeconds : Number.NaN),
    rssPerConnectionBytes: m((r) => r.rssPerConnectionBytes),
    brokerCpuShare: m((r) => r.brokerCpuShare),
    p50Ms: m((r) => r.latencyMs.p50),
    p99Ms: m((r) => r.latencyMs.p99),
    failed: t.rounds.reduce((n, r) => n + r.attempted - r.accepted + r.droppedAfterConnack, 0),
    listenDrops: t.rounds.reduce((n, r) => n + r.tcp.listenDrops, 0),
    otherCpuShare: m((r) => r.otherCpuShare)
  }
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const runId = randomUUID().slice(0, 8)
  const startedAt = new Date().toISOString()
  log(`run ${runId}: ${fmtInt(args.connects)} connects x ${args.rounds} rounds, ${args.workers} workers x ${args.concurrency} in flight, targets ${args.targets.join(', ')}`)

  let mainPath: Promise<string> | undefined
  const ctxMain = (): Promise<string> => {
    mainPath ??= args.main !== undefined
      ? Promise.resolve(args.main)
      : timed('compiled src/ into bench-results/build', () => buildPushline(ROOT, join(ROOT, 'bench-results/build')))
    return mainPath
  }
  let redis: Promise<{ url: string, pid: number, version: string, servicesStartedHere: boolean }> | undefined
  const ctxRedis = (): Promise<{ url: string, pid: number, version: string, servicesStartedHere: boolean }> => {
    redis ??= (async () => {
      const services = await ensureServices(ROOT)
      onCleanup('services', async () => {
        if (services.startedHere) log('stopping the services this run started (scripts/services.sh down)')
        await services.stop()
      })
      const info = await redisServerInfo(services.redisUrl)
      return { url: services.redisUrl, pid: info.pid, version: info.version, servicesStartedHere: services.startedHere }
    })()
    return redis
  }

  const targets: Target[] = []
  for (const name of args.targets) {
    const started = await startTarget(name, args, { runId, main: ctxMain, redis: ctxRedis })
    // The broker at rest, after its start and the provisioning: the base of the memory per connection.
    await waitForQuiet(started.broker.pid, { timeoutMs: 30_000 })
    targets.push({ ...started, idleRssBytes: rssBytes(started.broker.pid), idleFds: openFds(started.broker.pid), rounds: [] })
  }
  const redisInfo = redis === undefined ? undefined : await redis

  if (args.warmup > 0) {
    for (const t of targets) {
      const r = await runRound(t, 0, args, undefined, t.clients.slice(0, args.warmup))
      log(`warm-up ${t.name}: ${fmtInt(r.accepted)}/${fmtInt(r.attempted)} accepted, ${fmtInt(r.connectsPerSecond)} connects/s (not recorded)`)
    }
  }

  for (let round = 1; round <= args.rounds; round++) {
    for (const t of targets) {
      const r = await runRound(t, round, args, t.name === 'pushline-redis' || t.name === 'node-floor' ? redisInfo : undefined)
      t.rounds.push(r)
      const refused = Object.values(r.refused).reduce((a, b) => a + b, 0)
      log(`round ${round} ${t.name.padEnd(17)} ${fmtInt(r.connectsPerSecond).padStart(7)} connects/s  ${fmtInt(r.accepted)}/${fmtInt(r.attempted)} in ${fmt(r.wallSeconds, 2)} s` +
        `  p50 ${fmt(r.latencyMs.p50)} ms p99 ${fmt(r.latencyMs.p99)} ms  broker CPU ${fmt(r.brokerCpuShare * 100, 0)}%` +
        (r.redisCpuShare === undefined ? '' : ` redis ${fmt(r.redisCpuShare * 100, 0)}%`) + ` workers ${fmt(r.workerCpuShare * 100, 0)}% irq ${fmt(r.kernelIrqCpuShare * 100, 0)}% other ${fmt(r.otherCpuShare * 100, 0)}%` +
        (r.redisCommandsPerConnect === undefined ? '' : `  Redis commands/connect ${fmt(Object.values(r.redisCommandsPerConnect).reduce((a, b) => a + b, 0), 1)}`) +
        `  RSS/conn ${fmtBytes(r.rssPerConnectionBytes)}  idle again ${fmt(r.quietAfterSeconds, 1)} s after close` +
        (r.tcp.listenDrops + r.tcp.synRetransmits > 0 ? `  TCP: ${r.tcp.listenDrops} listen drops, ${r.tcp.synRetransmits} SYN retransmits` : '') +
        (refused + r.errors + r.timeouts + r.droppedAfterConnack > 0 ? `  refused ${refused} errors ${r.errors} timeouts ${r.timeouts} dropped ${r.droppedAfterConnack} ${r.errorSamples.join('; ')}` : ''))
    }
  }

  // Stop the brokers now (profiles are written at exit); cleanup() later finds them stopped.
  for (const t of targets) {
    const code = await t.broker.stop()
    if (code !== 0) log(`warning: ${t.name} exited with code ${code} on SIGTERM`)
  }

  const byName = new Map(targets.map((t) => [t.name, t]))
  const summaries = new Map(targets.map((t) => [t.name, summarize(t)]))
  const mosq = summaries.get('mosquitto')
  const redisMode = summaries.get('pushline-redis')
  const embedded = summaries.get('pushline-embedded')
  const ratio = (a: number | undefined, b: number | undefined): number | null =>
    a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? null : a / b

  const rows: string[][] = [['target', 'connects/s', 'per round', 'p50 ms', 'p99 ms', 'failed', 'broker CPU', 'connects/CPU-s', 'redis CPU', 'workers CPU', 'kernel irq', 'other CPU', 'RSS/conn', 'RSS idle → loaded']]
  for (const t of targets) {
    const s = summaries.get(t.name) as TargetSummary
    const last = t.rounds[t.rounds.length - 1]
    rows.push([
      t.name,
      fmtInt(s.connectsPerSecond),
      t.rounds.map((r) => fmtInt(r.connectsPerSecond)).join(' / '),
      fmt(s.p50Ms),
      fmt(s.p99Ms),
      fmtInt(s.failed),
      `${fmt(s.brokerCpuShare * 100, 0)}%`,
      fmtInt(s.connectsPerBrokerCpuSecond),
      t.name === 'pushline-redis' || t.name === 'node-floor' ? `${fmt(median(t.rounds.map((r) => r.redisCpuShare ?? Number.NaN)) * 100, 0)}%` : '-',
      `${fmt(median(t.rounds.map((r) => r.workerCpuShare)) * 100, 0)}%`,
      `${fmt(median(t.rounds.map((r) => r.kernelIrqCpuShare)) * 100, 0)}%`,
      `${fmt(s.otherCpuShare * 100, 0)}%`,
      fmtBytes(s.rssPerConnectionBytes),
      `${fmtBytes(t.idleRssBytes)} → ${last === undefined ? '-' : fmtBytes(last.rssAfterBytes)}`
    ])
  }
  const machine = machineInfo()
  const redisRatio = ratio(redisMode?.connectsPerSecond, mosq?.connectsPerSecond)
  const embeddedRatio = ratio(embedded?.connectsPerSecond, mosq?.connectsPerSecond)
  const redisCpuRatio = ratio(redisMode?.connectsPerBrokerCpuSecond, mosq?.connectsPerBrokerCpuSecond)
  const embeddedCpuRatio = ratio(embedded?.connectsPerBrokerCpuSecond, mosq?.connectsPerBrokerCpuSecond)
  const floor = summaries.get('node-floor')
  const floorRatio = ratio(floor?.connectsPerSecond, mosq?.connectsPerSecond)
  const floorCpuRatio = ratio(floor?.connectsPerBrokerCpuSecond, mosq?.connectsPerBrokerCpuSecond)
  const notes: string[] = []
  for (const t of targets) {
    const s = summaries.get(t.name) as TargetSummary
    if (s.listenDrops > 0) notes.push(`warning: ${fmtInt(s.listenDrops)} connections were dropped by a full accept queue during ${t.name}'s rounds (each costs a SYN retransmit, >= 1 s): lower --concurrency`)
    if (s.failed > 0) notes.push(`warning: ${t.name}: ${fmtInt(s.failed)} connects failed or were dropped (see the JSON for return codes and errors)`)
    if (s.otherCpuShare > 0.15) notes.push(`warning: during ${t.name}'s rounds the rest of the machine used ${fmt(s.otherCpuShare * 100, 0)}% of a core (other CPU): something else competed for the cores, rerun on a quiet machine`)
    if (s.brokerCpuShare < 0.8) notes.push(`note: ${t.name} used ${fmt(s.brokerCpuShare * 100, 0)}% of a core: something other than its own CPU set the pace (the load generator, the accept queue, or competing processes: see other CPU), so its rate is a lower bound; connects/CPU-s compares efficiency whatever set the pace`)
  }
  const lines = [
    '',
    `Connect rate, ${fmtInt(args.connects)} connects per round, ${args.rounds} rounds, ${args.workers} workers x ${args.concurrency} in flight, on ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}`,
    '',
    formatTable(rows),
    '',
    ...(redisRatio === null ? [] : [`pushline-redis / mosquitto:    ${fmt(redisRatio, 2)} of the rate, ${fmt(redisCpuRatio ?? Number.NaN, 3)} of the connects per CPU second`]),
    ...(embeddedRatio === null ? [] : [`pushline-embedded / mosquitto: ${fmt(embeddedRatio, 2)} of the rate, ${fmt(embeddedCpuRatio ?? Number.NaN, 3)} of the connects per CPU second`]),
    ...(floorRatio === null ? [] : [`node-floor / mosquitto:        ${fmt(floorRatio, 2)} of the rate, ${fmt(floorCpuRatio ?? Number.NaN, 3)} of the connects per CPU second`]),
    ...(floorRatio === null || redisRatio === null ? [] : [`pushline-redis / node-floor:   ${fmt(ratio(redisMode?.connectsPerSecond, floor?.connectsPerSecond) ?? Number.NaN, 2)} of the rate, ${fmt(ratio(redisMode?.connectsPerBrokerCpuSecond, floor?.connectsPerBrokerCpuSecond) ?? Number.NaN, 3)} of the connects per CPU second`]),
    ...(redisMode === undefined ? [] : [`goal: pushline-redis >= ${fmtInt(args.targetRate)} connects/s: ${redisMode.connectsPerSecond >= args.targetRate ? 'met' : 'NOT met'} (${fmtInt(redisMode.connectsPerSecond)})`]),
    'connects/s: median of the rounds. CPU: CPU seconds per wall second of a round (100% = one core); everything shares the same cores.',
    'kernel irq: interrupt + softirq time (loopback TCP) charged to no process; other: the rest of the machine (this process, anything else running).',
    ...notes,
    ''
  ]
  process.stdout.write(lines.join('\n') + '\n')

  const report = {
    benchmark: 'connect-rate',
    description: 'authenticated MQTT connects per second on one broker node (tokens checked against Redis), Mosquitto anonymous as the reference',
    runId,
    startedAt,
    finishedAt: new Date().toISOString(),
    params: { ...args, out: undefined, main: args.main ?? 'bench-results/build/src/main.js' },
    machine: {
      ...machine,
      mosquitto: byName.has('mosquitto') ? await mosquittoVersion() : undefined,
      redis: redisInfo === undefined ? undefined : { version: redisInfo.version, servicesStartedHere: redisInfo.servicesStartedHere }
    },
    summary: {
      pushlineRedisConnectsPerSecond: redisMode?.connectsPerSecond ?? null,
      mosquittoConnectsPerSecond: mosq?.connectsPerSecond ?? null,
      pushlineEmbeddedConnectsPerSecond: embedded?.connectsPerSecond ?? null,
      ratioRedisToMosquitto: redisRatio,
      ratioEmbeddedToMosquitto: embeddedRatio,
      connectsPerBrokerCpuSecond: Object.fromEntries([...summaries].map(([name, s]) => [name, s.connectsPerBrokerCpuSecond])),
      cpuEfficiencyRatioRedisToMosquitto: redisCpuRatio,
      cpuEfficiencyRatioEmbeddedToMosquitto: embeddedCpuRatio,
      targetConnectsPerSecond: args.targetRate,
      meetsTarget: redisMode === undefined ? null : redisMode.connectsPerSecond >= args.targetRate,
      rssPerConnectionBytes: Object.fromEntries([...summaries].map(([name, s]) => [name, s.rssPerConnectionBytes])),
      notes
    },
    targets: Object.fromEntries(targets.map((t) => [t.name, {
      description: t.description,
      ...summaries.get(t.name),
      idleRssBytes: t.idleRssBytes,
      rounds: t.rounds
    }]))
  }
  await writeReport(args.out, report)
  log(`wrote ${args.out}`)
  if (args.summary !== undefined) {
    const finite = (n: number | undefined): number | null => n === undefined || !Number.isFinite(n) ? null : Math.round(n)
    await writeSummary(args.summary, 'connect-rate', [
      figure({ name: 'authenticated connects/s, one node (Redis mode; reference: Mosquitto anonymous)', unit: 'connects/s', ours: finite(redisMode?.connectsPerSecond), reference: finite(mosq?.connectsPerSecond), target: `>= ${args.targetRate}` }),
      figure({ name: 'connects per broker CPU second (Redis mode)', unit: 'connects/CPU-s', ours: finite(redisMode?.connectsPerBrokerCpuSecond), reference: finite(mosq?.connectsPerBrokerCpuSecond) }),
      ...(floor === undefined
        ? []
        : [figure({ name: 'authenticated connects/s against the Node floor (CONNECT, token GET, CONNACK, nothing else)', unit: 'connects/s', ours: finite(redisMode?.connectsPerSecond), reference: finite(floor.connectsPerSecond) })])
    ], notes)
    log(`wrote ${args.summary}`)
  }
}

await runBench(main, USAGE)
