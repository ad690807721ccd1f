// Benchmark (prints figures; not a test): the registry's front door, cluster mode (Redis from scripts/services.sh).
//
//   flock /tmp/pushline-bench.lock npx tsx bench/onboarding.ts
//   npx tsx bench/onboarding.ts --parts batch,tokens --devices 50000 --token-requests 10000
//
// Parts (--parts, default all):
// - batch: devices created through POST /v1/admin/devices/batch, 10,000 per request, one request at a time,
//   against an API process (PUSHLINE_ROLE=api) beside one broker node; devices per second over all requests.
// - tokens: POST /v1/devices/{id}/token with each device's secret, every request a fresh device, --concurrency in
//   flight (64), on the same API process; its floor in the same run and process: a Fastify route that does one
//   Redis GET (bench/lib/api-host.ts). Rounds alternate floor, tokens. Then wrong secrets for existing ids and any
//   secret for unknown ids, to compare their cost.
// - puback: one all-in-one process (role all, the platform's defaults and --puback-node-env); a device publishes
//   QoS 1 uplinks at --puback-rate and times each PUBACK in --puback-pairs pairs of phases: idle (its share of
//   --puback-seconds), then while its share of --puback-token-requests fresh devices get tokens from the same
//   process (sized so both kinds of phase hold about as many samples). Alternating spreads slow moments of the
//   machine (a late fsync) over both kinds; the p99 of each kind is over all its samples. Each phase prints its
//   sample count and the event-loop delay of the process's main thread, the broker's (prom-client's histogram,
//   reset by every /metrics read; with its API thread, the process reports the broker thread's delay).
//   --puback-cpus PLATFORM:OTHERS models a platform host whose cores its clients and Redis do not share: the
//   all-in-one process runs on PLATFORM; this process (the probe, and the load generators it forks) and a Redis of
//   the part's own on OTHERS; this process gets its CPUs back after the part. A fleet's device has a CPU of its
//   own: --puback-probe-cpus and --puback-probe-nice take the probe off the CPUs the load generator and Redis keep
//   busy (their packets' kernel work queues there too) or raise its priority over them, so what it waits for is
//   the platform rather than the benchmark's other clients. --puback-warmup-pairs run first and are not counted:
//   a process just started (JIT, the heap after the devices' creation) is slow in its first phases, which would
//   flatter the ratio since each pair starts idle.
// Load generators are forked processes (bench/lib/http-load-worker.ts), and so is the PUBACK probe
// (bench/lib/puback-probe-worker.ts).

import { randomUUID } from 'node:crypto'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { createAdminClient, type AdminClient } from './lib/admin-api.ts'
import { buildPushline, cpuProfileArgs, startPushline, type PushlineProcess } from './lib/brokers.ts'
import { deleteRedisPrefix } from './lib/devices.ts'
import { allowedCpus, cpuListOption, cpuSplitOption, pinThisProcess } from './lib/cpu-affinity.ts'
import { runHttpLoad, type HttpLoadFigures, type HttpRequestSpec } from './lib/http-load.ts'
import { choiceList, commonOptions, exitOnHelp, intOption, onCleanup, runBench, setDeadline, settingsOption, writeReport } from './lib/lifecycle.ts'
import { cpuSeconds, machineBusySeconds } from './lib/proc.ts'
import { niceOf, startPubackProbeProcess, type ProbePhase } from './lib/puback-probe.ts'
import { startPrivateRedis, type PrivateRedis } from './lib/redis-server.ts'
import { ensureServices } from './lib/services.ts'
import { fmt, fmtInt, machineInfo, median, percentile } from './lib/stats.ts'
import { figure, writeSummary, type SummaryFigure } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const PARTS = ['batch', 'tokens', 'puback'] as const
type Part = typeof PARTS[number]
const BATCH = 10_000

const USAGE = `usage: npx tsx bench/onboarding.ts [options]

  --parts LIST          ${PARTS.join(',')} (default all)
  --devices N           devices the batch part creates (default 100000; the token part uses them)
  --token-requests N    token requests per round (default 20000)
  --rounds N            floor/token rounds (default 2)
  --concurrency N       requests in flight (default 64)
  --token-concurrency N PUSHLINE_TOKEN_CONCURRENCY of the API and all-in-one processes (default: the platform's)
  --puback-rate N       QoS 1 uplinks per second of the PUBACK probe (default 200)
  --puback-seconds N    idle probe length over all pairs (default 15)
  --puback-token-requests N  token requests (fresh devices) during the loaded probes, over all pairs (default 40000)
  --puback-pairs N      idle/loaded phase pairs (default 3)
  --puback-fsync P      PUSHLINE_SPOOL_FSYNC of the all-in-one process (default: the platform's); never isolates the
                        event loop's share of the PUBACK time from the disk's
  --puback-node-env K=V a setting of the all-in-one process (repeatable), e.g. PUSHLINE_API_THREAD=false for an A/B
  --puback-cpus P:O     CPU lists (taskset -c), e.g. 0:1: the all-in-one process on P; this process (the PUBACK
                        probe, the token load generator) and a redis-server of the part's own (not the shared one)
                        on O, for the part only (default: no pinning, the shared Redis)
  --puback-probe-nice N nice value of the PUBACK probe's process, -20..19 (default 0; below 0 needs root; a
                        negative value with "=": --puback-probe-nice=-10)
  --puback-probe-cpus L CPU list (taskset -c) of the PUBACK probe's process (default: this process's, O when pinned)
  --puback-warmup-pairs N  idle/loaded pairs run before the measured ones, not counted (default 1)
  --main PATH           compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH            JSON result (default bench-results/onboarding.json)
  --summary PATH        also write the common summary (bench/lib/summary.ts)
  --max-seconds N       abort the whole run after this long (default 900)
  --keep-logs           keep the processes' temp dirs with their logs
  --profile             run the API process (and the all-in-one process) with --cpu-prof; profiles go to bench-results/profiles/
  --help`

const log = (line: string): void => { process.stdout.write(`${line}\n`) }

interface Credential { readonly id: string, readonly secret: string }

/** Every token request gets its own device; the platform limits requests per device per minute. */
const tokenRequests = (creds: readonly Credential[]): HttpRequestSpec[] =>
  creds.map((c) => ({ method: 'POST', path: `/v1/devices/${c.id}/token`, body: { secret: c.secret } }))

function line (name: string, f: HttpLoadFigures): string {
  const bad = f.requests - f.ok
  return `${name.padEnd(22)} ${fmtInt(f.perSecond).padStart(7)}/s  p50 ${fmt(f.p50Ms, 2).padStart(6)} ms  p99 ${fmt(f.p99Ms, 2).padStart(6)} ms  ` +
    `(${fmtInt(f.ok)} ok${bad > 0 ? `, ${fmtInt(bad)} not: ${JSON.stringify(f.statuses)} ${f.errorSamples.slice(0, 2).join('; ')}` : ''}; load generator ${fmt(f.workerCpuSeconds, 1)} CPU-s)`
}

async function createDevices (admin: AdminClient, httpUrl: string, prefix: string, count: number): Promise<{ creds: Credential[], seconds: number, perBatchMs: number[] }> {
  const creds: Credential[] = []
  const perBatchMs: number[] = []
  for (let from = 0; from < count; from += BATCH) {
    const devices = Array.from({ length: Math.min(BATCH, count - from) }, (_, i) => ({ id: `${prefix}-${from + i}`, groups: ['bench'] }))
    const t0 = performance.now()
    const res = await admin.call(httpUrl, 'POST', '/v1/admin/devices/batch', { devices }) as { created: Credential[], failed: unknown[] }
    perBatchMs.push(performance.now() - t0)
    if (res.failed.length > 0) throw new Error(`batch failed for ${res.failed.length} devices: ${JSON.stringify(res.failed.slice(0, 3))}`)
    creds.push(...res.created.map((c) => ({ id: c.id, secret: c.secret })))
  }
  return { creds, seconds: perBatchMs.reduce((a, b) => a + b, 0) / 1000, perBatchMs }
}

/** Commands Redis has run since its start (or CONFIG RESETSTAT), over all clients. */
async function redisCalls (redis: Redis): Promise<number> {
  let total = 0
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) total += Number(m[1])
  return total
}

interface LoopDelay { readonly p99Ms: number, readonly maxMs: number }

/** The process's event-loop delay since the previous /metrics read: prom-client resets its histogram on each read. */
async function loopDelay (httpUrl: string): Promise<LoopDelay> {
  const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(30_000) })).text()
  const seconds = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN)
  return { p99Ms: seconds('nodejs_eventloop_lag_p99_seconds') * 1000, maxMs: seconds('nodejs_eventloop_lag_max_seconds') * 1000 }
}

interface ProbeResult { readonly sent: number, readonly acked: number, readonly p50Ms: number, readonly p99Ms: number, readonly maxMs: number }

/** The figures of one or more probe phases, over all their samples. */
function probeFigures (phases: ReadonlyArray<{ readonly sent: number, readonly latencies: readonly number[] }>): ProbeResult {
  const sorted = Float64Array.from(phases.flatMap((p) => p.latencies)).sort()
  return { sent: phases.reduce((n, p) => n + p.sent, 0), acked: sorted.length, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted[sorted.length - 1] ?? 0 }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      parts: { type: 'string', default: PARTS.join(',') },
      devices: { type: 'string', default: '100000' },
      'token-requests': { type: 'string', default: '20000' },
      rounds: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '64' },
      'token-concurrency': { type: 'string' },
      'puback-rate': { type: 'string', default: '200' },
      'puback-seconds': { type: 'string', default: '15' },
      'puback-token-requests': { type: 'string', default: '40000' },
      'puback-pairs': { type: 'string', default: '3' },
      'puback-fsync': { type: 'string' },
      'puback-node-env': { type: 'string', multiple: true, default: [] },
      'puback-cpus': { type: 'string' },
      'puback-probe-nice': { type: 'string', default: '0' },
      'puback-probe-cpus': { type: 'string' },
      'puback-warmup-pairs': { type: 'string', default: '1' },
      profile: { type: 'boolean', default: false },
      ...commonOptions(ROOT, 'onboarding', 900)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const parts = new Set<Part>(choiceList('parts', values.parts, PARTS, 'part'))
  const devices = intOption('devices', values.devices, 1000, 1_000_000)
  const perRound = intOption('token-requests', values['token-requests'], 100, 200_000)
  const rounds = intOption('rounds', values.rounds, 1, 10)
  const concurrency = intOption('concurrency', values.concurrency, 1, 1000)
  const pubackRate = intOption('puback-rate', values['puback-rate'], 1, 10_000)
  const pubackSeconds = intOption('puback-seconds', values['puback-seconds'], 1, 600)
  const pubackTokens = intOption('puback-token-requests', values['puback-token-requests'], 100, 500_000)
  const pubackPairs = intOption('puback-pairs', values['puback-pairs'], 1, 20)
  const pubackFsync = values['puback-fsync'] === undefined ? undefined : choiceList('puback-fsync', values['puback-fsync'], ['always', 'interval', 'never'] as const, 'policy')[0]
  const pubackNodeEnv = settingsOption('puback-node-env', values['puback-node-env'])
  const pubackCpus = values['puback-cpus'] === undefined ? undefined : cpuSplitOption('puback-cpus', values['puback-cpus'])
  const probeNice = intOption('puback-probe-nice', values['puback-probe-nice'], -20, 19)
  const probeCpus = values['puback-probe-cpus'] === undefined ? undefined : cpuListOption('puback-probe-cpus', values['puback-probe-cpus'])
  const warmupPairs = intOption('puback-warmup-pairs', values['puback-warmup-pairs'], 0, 5)
  const maxSeconds = intOption('max-seconds', values['max-seconds'], 10, 7200)
  setDeadline(maxSeconds * 1000)
  const wrongChecks = 2000
  const needed = (parts.has('tokens') ? rounds * perRound + wrongChecks : 0)
  if (parts.has('tokens') && needed > devices) throw new Error(`--devices ${devices} is too few for ${rounds} rounds of ${perRound} tokens and ${wrongChecks} wrong secrets (${needed})`)

  const runId = randomUUID().slice(0, 8)
  const admin = createAdminClient(log)
  // The shared Redis only for the parts that use it: a pinned puback part brings its own.
  const services = parts.has('batch') || parts.has('tokens') || (parts.has('puback') && pubackCpus === undefined) ? await ensureServices(ROOT) : undefined
  onCleanup('services', () => services?.stop())
  const sharedRedisUrl = (): string => {
    if (services === undefined) throw new Error('the shared Redis was not needed at start')
    return services.redisUrl
  }
  const build = values.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  const machine = machineInfo()
  log(`run ${runId}: parts ${[...parts].join(',')}; ${machine.cpus} CPUs (${machine.cpuModel})`)
  const tokenConcurrency = values['token-concurrency'] === undefined ? undefined : intOption('token-concurrency', values['token-concurrency'], 0, 100_000)
  const env = {
    PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000',
    PUSHLINE_UPLINK_RATE_PER_SECOND: '0',
    PUSHLINE_LOG_LEVEL: 'warn',
    ...(tokenConcurrency !== undefined && { PUSHLINE_TOKEN_CONCURRENCY: String(tokenConcurrency) })
  }
  const report: Record<string, unknown> = { runId, machine, args: values }
  const figures: SummaryFigure[] = []
  const busy0 = machineBusySeconds()
  const wall0 = performance.now()

  if (parts.has('batch') || parts.has('tokens')) {
    const prefix = `bench-onb-${runId}:`
    onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(sharedRedisUrl(), prefix)} Redis keys under ${prefix}`) })
    const broker = await startPushline({ name: 'broker', main: build, redisUrl: sharedRedisUrl(), redisPrefix: prefix, keepLogs: values['keep-logs'], env: { ...env, PUSHLINE_ROLE: 'broker' } })
    onCleanup('stop broker', () => broker.stop())
    // Default profile names in a directory of the run's own: tsx's loader thread writes a profile too, which a fixed
    // name would overwrite.
    const apiProfile = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench-results/profiles', `onboarding-api-${runId}`)}`] : []
    const api = await startPushline({ name: 'api', main: join(ROOT, 'bench/lib/api-host.ts'), nodeArgs: [...apiProfile, '--import', 'tsx'], args: [build], redisUrl: sharedRedisUrl(), redisPrefix: prefix, keepLogs: values['keep-logs'], env: { ...env, PUSHLINE_ROLE: 'api' } })
    onCleanup('stop api', () => api.stop())
    const floorUrl = /^floor (http:\/\/\S+)\/floor$/m.exec(api.output())?.[1]
    if (floorUrl === undefined) throw new Error(`the API host printed no floor address:\n${api.output()}`)
    // The broker node registers with its first heartbeat; tokens need a node to assign.
    for (let i = 0; i < 100 && ((await admin.call(api.httpUrl, 'GET', '/v1/admin/nodes')).nodes as unknown[]).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))

    const cpu0 = cpuSeconds(api.pid)
    const made = await createDevices(admin, api.httpUrl, `onb-${runId}`, devices)
    const batchRate = devices / made.seconds
    log(`batch: ${fmtInt(devices)} devices in ${fmt(made.seconds, 2)} s = ${fmtInt(batchRate)} devices/s (per request of ${fmtInt(BATCH)}: ${made.perBatchMs.map((ms) => fmt(ms, 0)).join(', ')} ms); API process ${fmt(cpuSeconds(api.pid) - cpu0, 1)} CPU-s`)
    report.batch = { devices, seconds: made.seconds, devicesPerSecond: batchRate, perBatchMs: made.perBatchMs }
    if (parts.has('batch')) figures.push(figure({ name: 'devices created through the batch route', unit: 'devices/s', ours: batchRate, target: '>= 20000' }))

    if (parts.has('tokens')) {
      const floorRequests: HttpRequestSpec[] = Array.from({ length: perRound }, () => ({ method: 'GET', path: '/floor' }))
      const tokenRounds: HttpLoadFigures[] = []
      const floorRounds: HttpLoadFigures[] = []
      const stats = new Redis(sharedRedisUrl())
      onCleanup('close the stats connection', () => stats.disconnect())
      // What a request costs whatever else the machine runs: the API process's CPU time and the Redis commands sent
      // (INFO commandstats, those run by Lua scripts included; the broker node's heartbeats are counted too).
      const costs: Array<{ floorCpuUs: number, tokenCpuUs: number, floorCommands: number, tokenCommands: number }> = []
      const measured = async (fn: () => Promise<HttpLoadFigures>): Promise<{ f: HttpLoadFigures, cpuUs: number, commands: number }> => {
        const c0 = await redisCalls(stats)
        const t0 = cpuSeconds(api.pid)
        const f = await fn()
        const cpuUs = (cpuSeconds(api.pid) - t0) * 1e6 / f.requests
        return { f, cpuUs, commands: (await redisCalls(stats) - c0) / f.requests }
      }
      const cost = (m: { cpuUs: number, commands: number }): string => `; API ${fmtInt(m.cpuUs)} µs CPU and ${fmt(m.commands, 1)} Redis commands per request`
      for (let r = 0; r < rounds; r++) {
        const floor = await measured(async () => await runHttpLoad(floorUrl, floorRequests, concurrency))
        log(line(`round ${r + 1} floor`, floor.f) + cost(floor))
        const tokens = await measured(async () => await runHttpLoad(api.httpUrl, tokenRequests(made.creds.slice(r * perRound, (r + 1) * perRound)), concurrency))
        log(line(`round ${r + 1} tokens`, tokens.f) + cost(tokens))
        costs.push({ floorCpuUs: floor.cpuUs, tokenCpuUs: tokens.cpuUs, floorCommands: floor.commands, tokenCommands: tokens.commands })
        floorRounds.push(floor.f)
        tokenRounds.push(tokens.f)
      }
      const rest = made.creds.slice(rounds * perRound, rounds * perRound + wrongChecks)
      const wrong = await runHttpLoad(api.httpUrl, rest.map((c) => ({ method: 'POST', path: `/v1/devices/${c.id}/token`, body: { secret: c.secret.slice(1) + 'x' } })), concurrency)
      const unknown = await runHttpLoad(api.httpUrl, rest.map((c) => ({ method: 'POST', path: `/v1/devices/${c.id}-nobody/token`, body: { secret: c.secret } })), concurrency)
      // Refusals are what these measure: their latencies are those of the 401 answers.
      const refused = (f: HttpLoadFigures): string => `${fmtInt(f.statuses['401'] ?? 0)} x 401`
      log(`wrong secret, known id:  ${refused(wrong)}, ${fmt(wrong.wallMs / wrongChecks, 3)} ms per request at ${concurrency} in flight`)
      log(`any secret, unknown id:  ${refused(unknown)}, ${fmt(unknown.wallMs / wrongChecks, 3)} ms per request at ${concurrency} in flight`)
      const tokenRate = median(tokenRounds.map((f) => f.perSecond))
      const floorRate = median(floorRounds.map((f) => f.perSecond))
      log(`tokens: ${fmtInt(tokenRate)}/s (median of ${rounds}), floor ${fmtInt(floorRate)}/s, ratio ${fmt(tokenRate / floorRate, 2)}; ` +
        `p50 ${fmt(median(tokenRounds.map((f) => f.p50Ms)), 2)} ms p99 ${fmt(median(tokenRounds.map((f) => f.p99Ms)), 2)} ms`)
      const tokenCpu = median(costs.map((c) => c.tokenCpuUs))
      const floorCpu = median(costs.map((c) => c.floorCpuUs))
      log(`API CPU per request: token ${fmtInt(tokenCpu)} µs, floor ${fmtInt(floorCpu)} µs, ratio ${fmt(floorCpu / tokenCpu, 2)}; ` +
        `Redis commands per token ${fmt(median(costs.map((c) => c.tokenCommands)), 1)} (floor ${fmt(median(costs.map((c) => c.floorCommands)), 1)})`)
      report.tokens = { costs, tokenRounds: tokenRounds.map(({ bodies: _b, ...f }) => f), floorRounds: floorRounds.map(({ bodies: _b, ...f }) => f), wrongSecretMsPerRequest: wrong.wallMs / wrongChecks, unknownIdMsPerRequest: unknown.wallMs / wrongChecks }
      figures.push(figure({ name: `tokens issued per API process (${concurrency} in flight), vs one-GET floor`, unit: 'tokens/s', ours: tokenRate, reference: floorRate, target: '>= 5000' }))
      figures.push(figure({ name: 'token issue p99', unit: 'ms', ours: median(tokenRounds.map((f) => f.p99Ms)), reference: median(floorRounds.map((f) => f.p99Ms)) }))
      figures.push(figure({ name: 'refusal time, wrong secret of a known id vs unknown id', unit: 'ms/request', ours: wrong.wallMs / wrongChecks, reference: unknown.wallMs / wrongChecks }))
    }
    await api.stop()
    await broker.stop()
  }

  if (parts.has('puback')) {
    const prefix = `bench-onb-pa-${runId}:`
    // Pinned before anything of the part starts: the load generators this process forks inherit its CPUs.
    const unpin = pubackCpus === undefined ? undefined : pinThisProcess(pubackCpus.others)
    let redisUrl: string
    let privateRedis: PrivateRedis | undefined
    if (pubackCpus === undefined) {
      redisUrl = sharedRedisUrl()
      onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(redisUrl, prefix)} Redis keys under ${prefix}`) })
    } else {
      privateRedis = await startPrivateRedis({ name: 'onboarding', cpus: pubackCpus.others })
      onCleanup('stop the part\'s redis-server', () => privateRedis?.stop())
      redisUrl = privateRedis.url
    }
    const node: PushlineProcess = await startPushline({ name: 'all-in-one', main: build, ...(values.profile && { nodeArgs: cpuProfileArgs(ROOT, `onboarding-all-${runId}`) }), redisUrl, redisPrefix: prefix, keepLogs: values['keep-logs'], cpus: pubackCpus?.platform, env: { ...env, ...(pubackFsync !== undefined && { PUSHLINE_SPOOL_FSYNC: pubackFsync }), ...pubackNodeEnv } })
    onCleanup('stop all-in-one', () => node.stop())
    const probe = await startPubackProbeProcess(probeNice, probeCpus)
    onCleanup('stop the PUBACK probe', () => probe.close())
    // Read back from /proc, so the header says where the processes may run and at what priority, not what was asked.
    const pinning = pubackCpus === undefined || privateRedis === undefined
      ? `no CPU pinning: the all-in-one process, the shared Redis and the token load generator on any of the ${machine.cpus} CPUs, the PUBACK probe on CPU ${allowedCpus(probe.pid)}`
      : `all-in-one process on CPU ${allowedCpus(node.pid)}; the token load generator on CPU ${allowedCpus(process.pid)}, the PUBACK probe on CPU ${allowedCpus(probe.pid)}, ` +
        `redis-server ${privateRedis.version} of the part's own on CPU ${allowedCpus(privateRedis.pid)}; other processes of the machine not pinned`
    const priorities = `PUBACK probe at nice ${niceOf(probe.pid)}, all-in-one process at nice ${niceOf(node.pid)}, token load generator at nice ${niceOf(process.pid)}`
    log(`puback: ${pinning}; ${priorities}`)
    for (let i = 0; i < 100 && ((await admin.call(node.httpUrl, 'GET', '/v1/admin/nodes')).nodes as unknown[]).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
    const perPair = Math.floor(pubackTokens / pubackPairs)
    const made = await createDevices(admin, node.httpUrl, `pa-${runId}`, 1 + (warmupPairs + pubackPairs) * perPair)
    const probeDevice = made.creds[0] as Credential
    const issued = await admin.call(node.httpUrl, 'POST', `/v1/devices/${probeDevice.id}/token`, { secret: probeDevice.secret }) as { token: string }
    const mqttUrl = `mqtt://${node.host}:${node.mqttPort}`
    const probeLine = (p: ProbeResult, l: LoopDelay): string => `p50 ${fmt(p.p50Ms, 2)} ms  p99 ${fmt(p.p99Ms, 2)} ms  max ${fmt(p.maxMs, 1)} ms  ` +
      `(${fmtInt(p.acked)} samples of ${fmtInt(p.sent)} sent; event-loop delay p99 ${fmt(l.p99Ms, 1)} ms, max ${fmt(l.maxMs, 1)} ms)`
    interface Pair { readonly idle: ProbePhase, readonly loaded: ProbePhase, readonly loop: { idle: LoopDelay, loaded: LoopDelay }, readonly tokens: HttpLoadFigures }
    /** One idle phase, then one under token load with the devices of slot `slot`. */
    const pair = async (slot: number): Promise<Pair> => {
      await loopDelay(node.httpUrl)
      const idleProbe = await probe.start(mqttUrl, probeDevice.id, issued.token, pubackRate)
      await new Promise((resolve) => setTimeout(resolve, pubackSeconds * 1000 / pubackPairs))
      const idle = await idleProbe.stop()
      const idleLoop = await loopDelay(node.httpUrl)
      const loadedProbe = await probe.start(mqttUrl, probeDevice.id, issued.token, pubackRate)
      const tokens = await runHttpLoad(node.httpUrl, tokenRequests(made.creds.slice(1 + slot * perPair, 1 + (slot + 1) * perPair)), concurrency)
      const loaded = await loadedProbe.stop()
      return { idle, loaded, loop: { idle: idleLoop, loaded: await loopDelay(node.httpUrl) }, tokens }
    }
    const pairLines = (name: string, r: Pair): void => {
      log(`${name} idle:             ${probeLine(probeFigures([r.idle]), r.loop.idle)}`)
      log(`${name} under token load: ${probeLine(probeFigures([r.loaded]), r.loop.loaded)}; ${line('tokens meanwhile', r.tokens)}`)
    }
    for (let w = 0; w < warmupPairs; w++) pairLines(`warm-up ${w + 1} (not counted)`, await pair(w))
    const pairs: Pair[] = []
    for (let p = 0; p < pubackPairs; p++) {
      pairs.push(await pair(warmupPairs + p))
      pairLines(`pair ${p + 1}`, pairs[p] as Pair)
    }
    const loops = pairs.map((r) => r.loop)
    const tokenPhases = pairs.map((r) => r.tokens)
    const idle = probeFigures(pairs.map((r) => r.idle))
    const loaded = probeFigures(pairs.map((r) => r.loaded))
    const worstLoop = (pick: (l: { idle: LoopDelay, loaded: LoopDelay }) => LoopDelay): LoopDelay => ({ p99Ms: Math.max(...loops.map((l) => pick(l).p99Ms)), maxMs: Math.max(...loops.map((l) => pick(l).maxMs)) })
    const idleLoop = worstLoop((l) => l.idle)
    const loadedLoop = worstLoop((l) => l.loaded)
    const tokens = { perSecond: median(tokenPhases.map((f) => f.perSecond)), requests: tokenPhases.reduce((n, f) => n + f.requests, 0), ok: tokenPhases.reduce((n, f) => n + f.ok, 0) }
    log(`PUBACK idle, all pairs:             ${probeLine(idle, idleLoop)} (loop delay: the worst phase)`)
    log(`PUBACK under token load, all pairs: ${probeLine(loaded, loadedLoop)}; tokens meanwhile ${fmtInt(tokens.perSecond)}/s (median of the phases), ${fmtInt(tokens.ok)} of ${fmtInt(tokens.requests)} ok`)
    const settingsNote = Object.entries(pubackNodeEnv).map(([k, v]) => `; ${k}=${v}`).join('')
    const cpusNote = (pubackCpus === undefined ? '' : `; CPUs ${pubackCpus.platform.join(',')}:${pubackCpus.others.join(',')}`) +
      (probeCpus === undefined ? '' : `; probe CPUs ${probeCpus.join(',')}`) + (probeNice === 0 ? '' : `; probe nice ${probeNice}`)
    log(`PUBACK p99 loaded / idle: ${fmt(loaded.p99Ms / idle.p99Ms, 2)} (target <= 2)${pubackFsync === undefined ? '' : `; spool fsync ${pubackFsync}`}${settingsNote}${cpusNote}`)
    // Fewer than about 2,000 samples leave a p99 that rests on a handful of them.
    if (Math.min(idle.acked, loaded.acked) < 2000) log(`  few samples (${fmtInt(Math.min(idle.acked, loaded.acked))}): raise --puback-seconds or --puback-token-requests for a stable p99`)
    report.puback = { idle, loaded, loops, tokens, tokenPhases: tokenPhases.map(({ bodies: _b, ...f }) => f), spoolFsync: pubackFsync, nodeEnv: pubackNodeEnv, cpus: pubackCpus ?? null, probeCpus: probeCpus ?? null, probeNice, warmupPairs, pinning, priorities }
    figures.push(figure({ name: 'QoS 1 PUBACK p99 under full token load, vs idle p99 (all-in-one process)', unit: 'ms', ours: loaded.p99Ms, reference: idle.p99Ms }))
    figures.push(figure({ name: 'PUBACK p99 ratio loaded / idle', unit: 'x', ours: loaded.p99Ms / idle.p99Ms, target: '<= 2' }))
    probe.close()
    await node.stop()
    await privateRedis?.stop()
    unpin?.()
  }

  const wallS = (performance.now() - wall0) / 1000
  const otherLoad = (machineBusySeconds() - busy0) / wallS
  log(`machine busy ${fmt(otherLoad, 2)} of ${machine.cpus} CPUs on average during the run (all processes, this benchmark's included)`)
  report.machineBusyCpus = otherLoad
  await writeReport(values.out, report)
  log(`wrote ${values.out}`)
  if (values.summary !== undefined) await writeSummary(values.summary, 'onboarding', figures, [`machine busy ${fmt(otherLoad, 2)} CPUs on average`])
}

await runBench(main, USAGE)
