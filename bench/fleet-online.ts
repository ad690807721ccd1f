// Benchmark (prints figures; not a test): a fleet from nothing to all online, then a reconnect storm, with
// devices-sim against --nodes broker processes and one API process on one Redis (scripts/services.sh).
//
//   flock /tmp/pushline-bench.lock npx tsx bench/fleet-online.ts                   # 100,000 devices, 6 nodes
//   npx tsx bench/fleet-online.ts --devices 20000 --nodes 2 --max-seconds 600
//
// Phase 1, onboarding: devices-sim creates the devices (POST /v1/admin/devices/batch), every device asks for a token
// (POST /v1/devices/{id}/token), connects to the node the token names and subscribes. Printed, each from the start
// of the simulator: all created (its "provisioned" line), all tokens issued (its progress lines), all connected
// (the nodes' pushline_connects_total), all subscribed (the simulator's connected count, which counts a device once
// its SUBACK is in), and presence exact (GET /v1/admin/stats: online = devices, sessions add up, drift 0).
// Phase 2, reconnect storm: every node is killed (SIGKILL) and started again on the same port and node id; the
// devices reconnect with the tokens they hold. Printed: the time from the kill until every device is subscribed
// again and presence is exact, and how many tokens were asked for meanwhile (the goal is none).
// Source addresses 127.0.0.2 onwards spread the simulator's connections; each simulator worker holds at most
// 18,000 (20,000 open files per process), each node at most 19,500.

import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createAdminClient } from './lib/admin-api.ts'
import { BENCH_ADMIN_KEY, buildPushline, buildSimulator, cpuProfileArgs, startPushline, type PushlineProcess } from './lib/brokers.ts'
import { deleteRedisPrefix } from './lib/devices.ts'
import { commonOptions, exitOnHelp, intOption, onCleanup, runBench, setDeadline, settingsOption, track, writeReport } from './lib/lifecycle.ts'
import { cpuSeconds, freePort, machineBusySeconds, tcpExtCounters } from './lib/proc.ts'
import { ensureServices, redisServerInfo } from './lib/services.ts'
import { fmt, fmtInt, machineInfo } from './lib/stats.ts'
import { figure, writeSummary } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const PER_WORKER = 18_000

const USAGE = `usage: npx tsx bench/fleet-online.ts [options]

  --devices N        devices (default 100000)
  --nodes N          broker node processes (default 6; each holds at most 19,500 devices)
  --addresses N      source addresses 127.0.0.2 onwards for the simulator (default 12)
  --target-seconds N goal for each phase (default 60)
  --main PATH        compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH         JSON result (default bench-results/fleet-online.json)
  --summary PATH     also write the common summary (bench/lib/summary.ts)
  --max-seconds N    abort the whole run after this long (default 1200)
  --skip-storm       stop after onboarding (no reconnect storm)
  --node-env K=V     a PUSHLINE_* setting for every broker node (repeatable), e.g. PUSHLINE_CONNECT_CONCURRENCY=128;
                     the benchmark does not pass on its own environment's PUSHLINE_* settings
  --profile          CPU profiles of the nodes, the API process and the simulator's workers (node --cpu-prof,
                     written at exit) into bench-results/profiles/; read them with bench/profile-summary.ts
  --keep-logs        keep the processes' temp dirs with their logs
  --help`

const log = (line: string): void => { process.stdout.write(`${line}\n`) }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const num = (s: string | undefined): number => Number((s ?? '').replace(/,/g, ''))

/** Process ids whose parent is `pid` (/proc/<pid>/stat field 4). */
function childrenOf (pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry))
    } catch {}
  }
  return out
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

interface Stats { online: number, nodes: Array<{ nodeId: string, sessions: number, presence: number, drift: number }> }

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '100000' },
      nodes: { type: 'string', default: '6' },
      addresses: { type: 'string', default: '12' },
      'target-seconds': { type: 'string', default: '60' },
      'skip-storm': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'node-env': { type: 'string', multiple: true, default: [] },
      ...commonOptions(ROOT, 'fleet-online', 1200)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const devices = intOption('devices', values.devices, 100, 1_000_000)
  const nodeCount = intOption('nodes', values.nodes, 1, 32)
  const addresses = intOption('addresses', values.addresses, 1, 200)
  const target = intOption('target-seconds', values['target-seconds'], 1, 3600)
  const maxSeconds = intOption('max-seconds', values['max-seconds'], 30, 7200)
  const nodeEnv = settingsOption('node-env', values['node-env'])
  if (devices / nodeCount > 19_000) throw new Error(`${devices} devices over ${nodeCount} nodes is more than 19,000 per node (open files): add nodes`)
  setDeadline(maxSeconds * 1000)

  const runId = randomUUID().slice(0, 8)
  const admin = createAdminClient(log)
  const services = await ensureServices(ROOT)
  onCleanup('services', () => services.stop())
  const build = values.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  const simCli = await buildSimulator(ROOT, join(ROOT, 'bench-results/build-sim'))
  const prefix = `bench-fleet-${runId}:`
  onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(services.redisUrl, prefix)} Redis keys under ${prefix}`) })
  const machine = machineInfo()
  log(`run ${runId}: ${fmtInt(devices)} devices, ${nodeCount} nodes + 1 API process; ${machine.cpus} CPUs (${machine.cpuModel})` +
    (Object.keys(nodeEnv).length === 0 ? '' : `; nodes with ${Object.entries(nodeEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`))

  const heartbeat = { PUSHLINE_HEARTBEAT_MS: '1000' }
  const profile = (name: string): string[] => values.profile ? cpuProfileArgs(ROOT, `fleet-online-${name}-${runId}`) : []
  const ports = await Promise.all(Array.from({ length: nodeCount }, async () => await freePort()))
  const startNode = async (i: number): Promise<PushlineProcess> => {
    const node = await startPushline({
      name: `node${i}`,
      main: build,
      redisUrl: services.redisUrl,
      redisPrefix: prefix,
      keepLogs: values['keep-logs'],
      nodeArgs: profile(`node${i}`),
      env: { ...heartbeat, ...nodeEnv, PUSHLINE_ROLE: 'broker', PUSHLINE_NODE_ID: `fleet-${runId}-${i}`, PUSHLINE_MQTT_PORT: String(ports[i]) }
    })
    onCleanup(`stop node${i}`, () => node.stop())
    return node
  }
  let nodes = await Promise.all(ports.map(async (_, i) => await startNode(i)))
  const api = await startPushline({ name: 'api', main: build, redisUrl: services.redisUrl, redisPrefix: prefix, keepLogs: values['keep-logs'], nodeArgs: profile('api'), env: { ...heartbeat, PUSHLINE_ROLE: 'api', PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000' } })
  onCleanup('stop api', () => api.stop())
  for (let i = 0; i < 200 && ((await admin.call(api.httpUrl, 'GET', '/v1/admin/nodes')).nodes as unknown[]).length < nodeCount; i++) await sleep(100)

  const simDir = await mkdtemp(join(tmpdir(), 'pushline-bench-fleet-'))
  onCleanup('remove simulator files', () => rm(simDir, { recursive: true, force: true }))
  const workers = Math.max(nodeCount, Math.ceil(devices / PER_WORKER))
  const simArgs = [
    simCli,
    '--url', api.httpUrl, '--admin-key', BENCH_ADMIN_KEY, '--devices', String(devices), '--prefix', `f${runId}`,
    '--workers', String(workers), '--source-addresses', `127.0.0.2-127.0.0.${1 + addresses}`,
    '--ramp', '1000000', '--connect-timeout', `${maxSeconds}s`, '--duration', `${maxSeconds}s`, '--telemetry-rate', '0',
    // Devices keep their token through any number of failed reconnects: the storm must not need new ones.
    '--refresh-after', '1000', '--engine', 'light', '--http-concurrency', '64', '--progress', '1s',
    '--credentials', join(simDir, 'credentials.json'), '--report', join(simDir, 'report.json')
  ]
  const t0 = performance.now()
  const at = (): number => (performance.now() - t0) / 1000
  // Its own process group, so that the simulator and its workers are stopped together.
  // The simulator passes its node flags on to its workers: each writes its own profile at exit, named by pid.
  const simFlags = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench-results/profiles')}`] : []
  const sim = track(spawn(process.execPath, [...simFlags, ...simArgs], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }))
  onCleanup('stop devices-sim', () => { try { process.kill(-(sim.pid as number), 'SIGKILL') } catch {} })
  // With --profile only the coordinator is killed: its workers see the IPC channel close and exit by themselves,
  // which writes their profiles (a SIGKILLed process writes none).
  const stopSimulator = async (): Promise<void> => {
    const workers = childrenOf(sim.pid as number)
    try { process.kill(values.profile ? sim.pid as number : -(sim.pid as number), 'SIGKILL') } catch {}
    for (let i = 0; i < 600 && workers.some(alive); i++) await sleep(100)
  }
  const marks: Record<string, number> = {}
  let tokens = 0
  let subscribed = 0
  let simErrors = 0
  let simOut = ''
  const onLine = (text: string): void => {
    for (const l of text.split(/[\r\n]+/)) {
      if (l.trim() === '') continue
      if (simOut.length < 200_000) simOut += l + '\n'
      if (/provisioned: /.test(l) && marks.created === undefined) marks.created = at()
      const p = /tokens ([\d,]+)\s+connected ([\d,]+)\//.exec(l)
      if (p !== null) {
        tokens = num(p[1])
        subscribed = num(p[2])
        simErrors = num(/errors ([\d,]+)/.exec(l)?.[1])
      }
      if (/provisioned: |connect phase: |^devices-sim: /.test(l)) log(`  sim: ${l.trim()}`)
    }
  }
  sim.stdout?.on('data', (d: Buffer) => { onLine(d.toString()) })
  sim.stderr?.on('data', (d: Buffer) => { onLine(d.toString()) })

  const connects = async (): Promise<number> => {
    let sum = 0
    for (const n of nodes) {
      const text = await fetch(`${n.httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(async (r) => await r.text(), () => '')
      sum += Number(/^pushline_connects_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0)
    }
    return sum
  }
  /** The nodes' CONNACK refusals by reason (pushline_connects_refused_total), summed; the restarted nodes count from 0. */
  const refusalsByReason = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {}
    for (const n of nodes) {
      const text = await fetch(`${n.httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(async (r) => await r.text(), () => '')
      for (const m of text.matchAll(/^pushline_connects_refused_total\{[^}]*\breason="([^"]+)"[^}]*\} (\d+)/gm)) out[m[1] as string] = (out[m[1] as string] ?? 0) + Number(m[2])
    }
    return out
  }
  let lastStats = 'no answer yet'
  const exact = async (): Promise<boolean> => {
    const s = await admin.call(api.httpUrl, 'GET', '/v1/admin/stats').catch(() => undefined) as Stats | undefined
    if (s === undefined) return false
    lastStats = `online ${s.online}, sessions ${s.nodes.map((n) => n.sessions).join('+')}, presence ${s.nodes.map((n) => n.presence).join('+')}, drift ${s.nodes.map((n) => n.drift).join(',')}`
    return s.online === devices && s.nodes.reduce((a, n) => a + n.sessions, 0) === devices && s.nodes.every((n) => n.drift === 0)
  }
  const deadline = Date.now() + maxSeconds * 1000
  const watch = async (what: string, phase: 'onboarding' | 'storm', base: number, connectsBase: number): Promise<Record<string, number>> => {
    const m: Record<string, number> = {}
    let said = at()
    let scraped = -1
    while (Date.now() < deadline) {
      if (at() - said >= 10) {
        said = at()
        // The nodes' connect counters and presence as they are now (lastStats is only refreshed by exact()).
        await exact()
        const counted = await connects() - connectsBase
        scraped = at()
        if (m.connected === undefined && counted >= devices) m.connected = scraped - base
        const waitingFor = `; connects counted ${fmtInt(counted)}; stats: ${lastStats}`
        log(`  ${what}, ${fmt(at() - base, 0)} s: tokens ${fmtInt(tokens)}, subscribed ${fmtInt(subscribed)}/${fmtInt(devices)}, simulator errors ${fmtInt(simErrors)}${waitingFor}`)
      }
      if (sim.exitCode !== null) throw new Error(`devices-sim exited (${sim.exitCode}):\n${simOut.slice(-3000)}`)
      if (phase === 'onboarding' && m.tokens === undefined && tokens >= devices) m.tokens = at() - base
      // The nodes' connect counters every 5 s (a progress line's scrape counts as one), so that the benchmark's own
      // polling stays out of what the nodes spend; every 250 ms once the simulator counts every device subscribed
      // (which comes after its connect), for the phase's end.
      if (m.connected === undefined && at() - scraped >= (subscribed >= devices ? 0.25 : 5)) {
        scraped = at()
        if ((await connects()) - connectsBase >= devices) m.connected = at() - base
      }
      if (m.subscribed === undefined && subscribed >= devices && (phase === 'onboarding' || m.connected !== undefined)) m.subscribed = at() - base
      // A device subscribes only with a token, but the token count comes from the workers' last snapshots and can
      // lag the connected count on the same progress line: all subscribed means all tokens issued by then.
      if (phase === 'onboarding' && m.tokens === undefined && m.subscribed !== undefined) m.tokens = m.subscribed
      if (m.subscribed !== undefined && m.exact === undefined && await exact()) m.exact = at() - base
      if (m.exact !== undefined) return m
      await sleep(250)
    }
    await exact()
    throw new Error(`${what}: not done within --max-seconds (tokens ${tokens}, subscribed ${subscribed}/${devices}, connects counted ${await connects() - connectsBase}, stats: ${lastStats})`)
  }

  const busy0 = machineBusySeconds()
  const tcp0 = tcpExtCounters()
  const redisPid = (await redisServerInfo(services.redisUrl)).pid
  const redisCpu0 = cpuSeconds(redisPid)
  const onboarding = await watch('onboarding', 'onboarding', 0, 0)
  onboarding.created = marks.created ?? Number.NaN
  log(`onboarding from nothing: created ${fmt(onboarding.created, 1)} s, tokens issued ${fmt(onboarding.tokens ?? Number.NaN, 1)} s, connected ${fmt(onboarding.connected ?? Number.NaN, 1)} s, ` +
    `subscribed ${fmt(onboarding.subscribed ?? Number.NaN, 1)} s, presence exact ${fmt(onboarding.exact ?? Number.NaN, 1)} s (target ${target} s)`)
  // CPU seconds each process spent from its start to presence exact (Redis: from the simulator's start).
  const simWorkers = childrenOf(sim.pid as number)
  const cpu = {
    nodes: nodes.map((n) => cpuSeconds(n.pid)),
    api: cpuSeconds(api.pid),
    simCoordinator: cpuSeconds(sim.pid as number),
    simWorkers: simWorkers.map((pid) => cpuSeconds(pid)),
    redis: cpuSeconds(redisPid) - redisCpu0
  }
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
  const perDevice = (s: number): string => `${fmt(s / devices * 1000, 2)} ms/device`
  log(`CPU-s to presence exact: nodes ${cpu.nodes.map((s) => fmt(s, 1)).join(' + ')} = ${fmt(sum(cpu.nodes), 1)} (${perDevice(sum(cpu.nodes))}); ` +
    `API ${fmt(cpu.api, 1)} (${perDevice(cpu.api)}); simulator workers ${cpu.simWorkers.map((s) => fmt(s, 1)).join(' + ')} = ${fmt(sum(cpu.simWorkers), 1)} (${perDevice(sum(cpu.simWorkers))}), ` +
    `coordinator ${fmt(cpu.simCoordinator, 1)}; Redis ${fmt(cpu.redis, 1)} (${perDevice(cpu.redis)}); ` +
    `all ${fmt(sum(cpu.nodes) + cpu.api + sum(cpu.simWorkers) + cpu.simCoordinator + cpu.redis, 1)} (${perDevice(sum(cpu.nodes) + cpu.api + sum(cpu.simWorkers) + cpu.simCoordinator + cpu.redis)})`)
  // Connects dropped in the kernel (a full accept queue) are retried by the client after 1, 3, 7 ... s: a tail that
  // no process's CPU explains. Machine-wide counters: anything else connecting meanwhile counts too.
  const tcp = tcpExtCounters()
  log(`kernel: accept queue overflows ${fmtInt((tcp.ListenOverflows ?? 0) - (tcp0.ListenOverflows ?? 0))}, SYNs dropped ${fmtInt((tcp.ListenDrops ?? 0) - (tcp0.ListenDrops ?? 0))}; simulator errors ${fmtInt(simErrors)}`)
  if (values['skip-storm']) {
    const busy = (machineBusySeconds() - busy0) / at()
    log(`machine busy ${fmt(busy, 2)} of ${machine.cpus} CPUs on average (all processes, this benchmark's included)`)
    await stopSimulator()
    await writeReport(values.out, { runId, machine, devices, nodes: nodeCount, onboarding, cpuSeconds: cpu, machineBusyCpus: busy })
    log(`wrote ${values.out}`)
    return
  }

  const tokensBefore = tokens
  // CPU seconds each process had spent by the kill, so the storm's own share can be told apart (the restarted nodes
  // are new processes and count from 0).
  const cpuAtKill = { api: cpuSeconds(api.pid), simCoordinator: cpuSeconds(sim.pid as number), simWorkers: simWorkers.map((pid) => cpuSeconds(pid)), redis: cpuSeconds(redisPid) }
  const simErrorsBefore = simErrors
  const connectsBefore = 0
  const kill = at()
  for (const n of nodes) n.child.kill('SIGKILL')
  await Promise.all(nodes.map(async (n) => { await n.stop(1000) }))
  // Started again at once, as a process manager would. The phase's figures do not rest on the simulator having seen
  // its connections drop: connected counts the new processes' connects, and presence exact their sessions.
  log(`  all nodes killed after ${fmt(at() - kill, 1)} s; starting them again`)
  nodes = await Promise.all(ports.map(async (_, i) => await startNode(i)))
  const restarted = at() - kill
  const storm = await watch('reconnect storm', 'storm', kill, connectsBefore)
  const newTokens = tokens - tokensBefore
  const stormCpu = {
    nodes: nodes.map((n) => cpuSeconds(n.pid)),
    api: cpuSeconds(api.pid) - cpuAtKill.api,
    simCoordinator: cpuSeconds(sim.pid as number) - cpuAtKill.simCoordinator,
    simWorkers: simWorkers.map((pid, i) => cpuSeconds(pid) - (cpuAtKill.simWorkers[i] ?? 0)),
    redis: cpuSeconds(redisPid) - cpuAtKill.redis
  }
  log(`CPU-s from the kill to presence exact: nodes ${stormCpu.nodes.map((s) => fmt(s, 1)).join(' + ')} = ${fmt(sum(stormCpu.nodes), 1)} (${perDevice(sum(stormCpu.nodes))}); ` +
    `API ${fmt(stormCpu.api, 1)}; simulator workers ${fmt(sum(stormCpu.simWorkers), 1)}, coordinator ${fmt(stormCpu.simCoordinator, 1)}; Redis ${fmt(stormCpu.redis, 1)}; ` +
    `all ${fmt(sum(stormCpu.nodes) + stormCpu.api + sum(stormCpu.simWorkers) + stormCpu.simCoordinator + stormCpu.redis, 1)}`)
  const refused = await refusalsByReason()
  log(`reconnect storm: simulator errors ${fmtInt(simErrors - simErrorsBefore)}; the nodes refused ${Object.entries(refused).map(([r, n]) => `${r} ${fmtInt(n)}`).join(', ') || 'none'}`)
  log(`reconnect storm: nodes killed and started again in ${fmt(restarted, 1)} s; from the kill: connected ${fmt(storm.connected ?? Number.NaN, 1)} s, subscribed ${fmt(storm.subscribed ?? Number.NaN, 1)} s, ` +
    `presence exact ${fmt(storm.exact ?? Number.NaN, 1)} s; tokens asked for meanwhile: ${fmtInt(newTokens)} (target 0)`)
  const busy = (machineBusySeconds() - busy0) / at()
  log(`machine busy ${fmt(busy, 2)} of ${machine.cpus} CPUs on average (all processes, this benchmark's included)`)

  await stopSimulator()
  await writeReport(values.out, { runId, machine, devices, nodes: nodeCount, onboarding, cpuSeconds: cpu, storm: { ...storm, restartSeconds: restarted, newTokens, cpuSeconds: stormCpu, simulatorErrors: simErrors - simErrorsBefore, refused }, machineBusyCpus: busy })
  log(`wrote ${values.out}`)
  if (values.summary !== undefined) {
    await writeSummary(values.summary, 'fleet-online', [
      figure({ name: `${fmtInt(devices)} devices from nothing to subscribed, ${nodeCount} nodes + 1 API process`, unit: 's', ours: onboarding.subscribed ?? null, target: `<= ${target}` }),
      figure({ name: 'onboarding: all created', unit: 's', ours: onboarding.created }),
      figure({ name: 'onboarding: all tokens issued', unit: 's', ours: onboarding.tokens ?? null }),
      figure({ name: 'onboarding: all connected', unit: 's', ours: onboarding.connected ?? null }),
      figure({ name: 'reconnect storm: all subscribed again, presence exact', unit: 's', ours: storm.exact ?? null, target: `<= ${target}` }),
      figure({ name: 'reconnect storm: tokens asked for', unit: 'tokens', ours: newTokens, target: '<= 0' })
    ], [`machine busy ${fmt(busy, 2)} CPUs on average`])
  }
}

await runBench(main, USAGE)
