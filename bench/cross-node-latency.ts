// Benchmark (prints figures; not a test): cross-node downlink latency in a Pushline cluster, and connection
// churn with presence kept exact. Mosquitto (one broker, same clients, same rates) is measured in the same run
// as the reference.
//
//   npx tsx bench/cross-node-latency.ts
//   npx tsx bench/cross-node-latency.ts --rates 1000,5000,10000 --seconds 5 --subscribers 100 --qos 1,0
//   npx tsx bench/cross-node-latency.ts --help
//
// Latency: two Pushline broker processes (role all) share one Redis (unique key prefix). --subscribers MQTT
// clients (clean sessions, anonymous), client i on topic lat/<i>, connect to node B from one worker process;
// one publisher connects to node A from another worker process and publishes open loop at a fixed rate,
// round-robin over the topics, the payload carrying its process.hrtime.bigint() send time. Per rate: a
// --warmup-seconds phase (not recorded), then --seconds recorded, then --drain-ms for stragglers. Figures:
// p50 / p99 / max of receive minus send time, and lost = sent − received in the recorded phase.
// Mosquitto: the same workers, publisher and subscribers on the one broker.
//
// Churn: --churn-clients raw MQTT clients (one worker process) connect (wait for CONNACK) and disconnect
// (DISCONNECT) in a loop for --churn-seconds, alternating between node A and node B; at the end the
// even-numbered ones connect once more and stay. GET /v1/admin/stats is then polled: presence is exact when
// `online` equals that count, the nodes' sessions add up to it and every node's drift is 0, within 2
// heartbeat periods (PUSHLINE_HEARTBEAT_MS = --heartbeat-ms).
//
// Results: a table on stdout and bench-results/cross-node-latency.json. See bench/README.md.

import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildPushline, mosquittoVersion, startMosquitto, startPushline, type BrokerProcess, type PushlineProcess } from './lib/brokers.ts'
import { deleteRedisPrefix } from './lib/devices.ts'
import type { LatencyParentMessage, LatencyWorkerMessage } from './lib/latency-protocol.ts'
import { figure, writeSummary } from './lib/summary.ts'
import { choiceList, commonOptions, exitOnHelp, isAlive, onCleanup, runBench, setDeadline, splitList, track, UsageError, writeReport, intOption } from './lib/lifecycle.ts'
import { cpuSeconds, machineCpu } from './lib/proc.ts'
import { ensureServices, redisServerInfo } from './lib/services.ts'
import { fmt, fmtInt, formatTable, machineInfo, percentile } from './lib/stats.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const WORKER = fileURLToPath(new URL('./lib/latency-worker.ts', import.meta.url))
const TSX_LOADER = import.meta.resolve('tsx')

const USAGE = `usage: npx tsx bench/cross-node-latency.ts [options]

  --rates LIST          publish rates, msg/s, comma-separated (default 1000,5000,10000)
  --qos LIST            QoS of publisher and subscriptions, comma-separated (default 1,0; QoS 1 is the main figure)
  --seconds N           recorded seconds per rate (default 5)
  --warmup-seconds N    unrecorded seconds before each rate (default 1)
  --drain-ms N          wait after the last publish before counting (default 2000)
  --subscribers N       subscriber clients, one topic each (default 100)
  --targets LIST        pushline-cluster, mosquitto (default both)
  --churn-clients N     clients of the churn test (default 200; 0: no churn test)
  --churn-seconds N     (default 5)
  --heartbeat-ms N      PUSHLINE_HEARTBEAT_MS of the nodes (default 1000)
  --target-p99-ms N     goal: cross-node p99 at --target-rate, QoS 1 (default 10)
  --target-rate N       (default 5000)
  --main PATH           compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH            JSON result (default bench-results/cross-node-latency.json)
  --summary PATH        also write the key figures in the suite's common shape (bench/lib/summary.ts)
  --max-seconds N       abort the whole run after this long (default 600)
  --keep-logs           keep the brokers' temp dirs with their logs
  --help`

const TARGETS = ['pushline-cluster', 'mosquitto'] as const
type TargetName = typeof TARGETS[number]

interface Args {
  readonly rates: readonly number[]
  readonly qos: ReadonlyArray<0 | 1>
  readonly seconds: number
  readonly warmupSeconds: number
  readonly drainMs: number
  readonly subscribers: number
  readonly targets: readonly TargetName[]
  readonly churnClients: number
  readonly churnSeconds: number
  readonly heartbeatMs: number
  readonly targetP99Ms: number
  readonly targetRate: number
  readonly main: string | undefined
  readonly out: string
  readonly summary: string | undefined
  readonly maxSeconds: number
  readonly keepLogs: boolean
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      rates: { type: 'string', default: '1000,5000,10000' },
      qos: { type: 'string', default: '1,0' },
      seconds: { type: 'string', default: '5' },
      'warmup-seconds': { type: 'string', default: '1' },
      'drain-ms': { type: 'string', default: '2000' },
      subscribers: { type: 'string', default: '100' },
      targets: { type: 'string', default: TARGETS.join(',') },
      'churn-clients': { type: 'string', default: '200' },
      'churn-seconds': { type: 'string', default: '5' },
      'heartbeat-ms': { type: 'string', default: '1000' },
      'target-p99-ms': { type: 'string', default: '10' },
      'target-rate': { type: 'string', default: '5000' },
      ...commonOptions(ROOT, 'cross-node-latency', 600)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const int = intOption
  const targets = choiceList('targets', values.targets, TARGETS, 'target')
  const qos = splitList(values.qos).map((q) => int('qos', q, 0, 1) as 0 | 1)
  if (qos.length === 0) throw new UsageError('--qos is empty')
  return {
    rates: splitList(values.rates).map((r) => int('rates', r, 1, 100_000)),
    qos: [...new Set(qos)],
    seconds: int('seconds', values.seconds, 1, 120),
    warmupSeconds: int('warmup-seconds', values['warmup-seconds'], 0, 60),
    drainMs: int('drain-ms', values['drain-ms'], 0, 60_000),
    subscribers: int('subscribers', values.subscribers, 1, 5000),
    targets: [...new Set(targets)],
    churnClients: int('churn-clients', values['churn-clients'], 0, 5000),
    churnSeconds: int('churn-seconds', values['churn-seconds'], 1, 120),
    heartbeatMs: int('heartbeat-ms', values['heartbeat-ms'], 100, 60_000),
    targetP99Ms: Number(values['target-p99-ms']),
    targetRate: int('target-rate', values['target-rate'], 1, 100_000),
    main: values.main === undefined ? undefined : resolve(values.main),
    out: resolve(values.out),
    summary: values.summary === undefined ? undefined : resolve(values.summary),
    maxSeconds: int('max-seconds', values['max-seconds'], 10, 24 * 3600),
    keepLogs: values['keep-logs']
  }
}

function log (line: string): void {
  process.stderr.write(`bench: ${line}\n`)
}

/** A forked latency-worker.ts with request/response over IPC (one request in flight at a time). */
class Worker {
  private pending: { resolve: (m: LatencyWorkerMessage) => void, reject: (e: Error) => void } | undefined
  private failure: Error | undefined
  private readonly started: Promise<void>

  constructor (readonly name: string, readonly child: ChildProcess) {
    let onStarted: () => void = () => {}
    this.started = new Promise((resolve) => { onStarted = resolve })
    child.on('message', (m: LatencyWorkerMessage) => {
      if (m.type === 'started') return onStarted()
      if (m.type === 'failed') return this.fail(new Error(`worker ${name} failed: ${m.message}`))
      const p = this.pending
      this.pending = undefined
      p?.resolve(m)
    })
    child.once('exit', (code, signal) => this.fail(new Error(`worker ${name} exited (code ${code}, signal ${signal})`)))
  }

  static spawn (name: string): Worker {
    return new Worker(name, track(fork(WORKER, [], { execArgv: ['--import', TSX_LOADER], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })))
  }

  private fail (err: Error): void {
    this.failure ??= err
    const p = this.pending
    this.pending = undefined
    p?.reject(err)
  }

  async request<T extends LatencyWorkerMessage['type']> (message: LatencyParentMessage, expect: T, timeoutMs = 120_000): Promise<Extract<LatencyWorkerMessage, { type: T }>> {
    await this.started
    if (this.failure !== undefined) throw this.failure
    let timer: NodeJS.Timeout | undefined
    try {
      const reply = await Promise.race([
        new Promise<LatencyWorkerMessage>((resolve, reject) => {
          this.pending = { resolve, reject }
          this.child.send(message)
        }),
        new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`worker ${this.name}: no answer to ${message.type} within ${timeoutMs} ms`)), timeoutMs) })
      ])
      if (reply.type !== expect) throw new Error(`worker ${this.name}: expected ${expect}, got ${reply.type}`)
      return reply as Extract<LatencyWorkerMessage, { type: T }>
    } finally {
      clearTimeout(timer)
    }
  }

  async stop (): Promise<void> {
    if (!isAlive(this.child)) return
    await this.request({ type: 'close' }, 'closed', 10_000).catch(() => {})
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.disconnect()
    const timer = setTimeout(() => { if (isAlive(this.child)) this.child.kill('SIGKILL') }, 5000)
    await exited
    clearTimeout(timer)
  }
}

interface LatencyRow {
  readonly target: TargetName
  readonly qos: 0 | 1
  readonly rate: number
  readonly sent: number
  readonly received: number
  readonly lost: number
  readonly publishErrors: number
  /** Longest the publisher fell behind its schedule (ms): > a few ms means the load generator, not the broker, lagged. */
  readonly publisherLagMs: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** CPU seconds per wall second of the recorded phase, per broker process. */
  readonly brokerCpu: Readonly<Record<string, number>>
  /** Same, for Redis (cluster only) and the two load generator workers together. */
  readonly redisCpu: number | null
  readonly workerCpu: number
  /**
   * The rest of the machine during the recorded phase (all CPUs busy − irq/softirq − brokers − Redis − workers),
   * per wall second: this process plus anyone else's. Above ~0.15 the figures are disturbed: rerun on a quiet machine.
   */
  readonly otherCpu: number
}

async function measureLatency (args: Args, target: TargetName, pubBroker: BrokerProcess, subBroker: BrokerProcess, brokers: readonly BrokerProcess[], qos: 0 | 1, runId: string, redisPid?: number): Promise<LatencyRow[]> {
  const topics = Array.from({ length: args.subscribers }, (_v, i) => `lat/${runId}/${i}`)
  const sub = Worker.spawn(`${target}-sub`)
  const pub = Worker.spawn(`${target}-pub`)
  const rows: LatencyRow[] = []
  try {
    await sub.request({ type: 'subscribe', host: subBroker.host, port: subBroker.mqttPort, topics, qos, idPrefix: `bench-${runId}-q${qos}` }, 'ready')
    await pub.request({ type: 'connect-publisher', host: pubBroker.host, port: pubBroker.mqttPort, idPrefix: `bench-${runId}-q${qos}` }, 'ready')
    // Subscriptions must have reached the other node (Redis pub/sub and the subscription store) before publishing.
    await sleep(500)
    let phase = 1
    for (const rate of args.rates) {
      const warm = phase++
      const rec = phase++
      if (args.warmupSeconds > 0) await pub.request({ type: 'publish', phase: warm, rate, seconds: args.warmupSeconds, topics, qos }, 'published')
      const workerPids = [sub.child.pid as number, pub.child.pid as number]
      const cpuBefore = brokers.map((b) => cpuSeconds(b.pid))
      const redisBefore = redisPid === undefined ? 0 : cpuSeconds(redisPid)
      const workersBefore = workerPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
      const m0 = machineCpu()
      const t0 = performance.now()
      const published = await pub.request({ type: 'publish', phase: rec, rate, seconds: args.seconds, topics, qos }, 'published')
      const wall = (performance.now() - t0) / 1000
      const m1 = machineCpu()
      const cpuAfter = brokers.map((b) => cpuSeconds(b.pid))
      const redisCpu = redisPid === undefined ? 0 : cpuSeconds(redisPid) - redisBefore
      const workerCpu = workerPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - workersBefore
      const brokerCpuTotal = cpuAfter.reduce((sum, c, i) => sum + c - (cpuBefore[i] as number), 0)
      await sleep(args.drainMs)
      await sub.request({ type: 'collect', phase: warm }, 'samples')
      const { latenciesMs } = await sub.request({ type: 'collect', phase: rec }, 'samples')
      const sorted = Float64Array.from(latenciesMs).sort()
      const row: LatencyRow = {
        target,
        qos,
        rate,
        sent: published.sent,
        received: sorted.length,
        lost: published.sent - sorted.length,
        publishErrors: published.errors,
        publisherLagMs: published.lateMs,
        p50Ms: percentile(sorted, 0.5),
        p90Ms: percentile(sorted, 0.9),
        p99Ms: percentile(sorted, 0.99),
        maxMs: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1] as number,
        brokerCpu: Object.fromEntries(brokers.map((b, i) => [b.name, ((cpuAfter[i] as number) - (cpuBefore[i] as number)) / wall])),
        redisCpu: redisPid === undefined ? null : redisCpu / wall,
        workerCpu: workerCpu / wall,
        otherCpu: Math.max(0, (m1.busy - m0.busy) - (m1.interrupts - m0.interrupts) - brokerCpuTotal - redisCpu - workerCpu) / wall
      }
      rows.push(row)
      log(`${target} qos ${qos} ${fmtInt(rate)} msg/s: p50 ${fmt(row.p50Ms, 2)} ms, p99 ${fmt(row.p99Ms, 2)} ms, max ${fmt(row.maxMs, 1)} ms, sent ${fmtInt(row.sent)}, lost ${fmtInt(row.lost)}`)
      for (const b of brokers) {
        const why = b.unexpectedExit()
        if (why !== undefined) throw new Error(why)
      }
    }
  } finally {
    await Promise.all([sub.stop(), pub.stop()])
  }
  return rows
}

interface StatsView { online: number, nodes: Array<{ nodeId: string, sessions: number, presence: number, drift: number }> }

async function adminStats (node: PushlineProcess): Promise<StatsView> {
  const res = await fetch(`${node.httpUrl}/v1/admin/stats`, { headers: { authorization: `Bearer ${node.adminKey}` } })
  if (!res.ok) throw new Error(`GET /v1/admin/stats: ${res.status} ${await res.text()}`)
  return await res.json() as StatsView
}

function exact (s: StatsView, expected: number): boolean {
  return s.online === expected && s.nodes.every((n) => n.drift === 0) && s.nodes.reduce((sum, n) => sum + n.sessions, 0) === expected
}

/** Polls the stats until exact or `ms` passed; returns the last view and when it became exact (ms since the call), if it did. */
async function waitExact (node: PushlineProcess, expected: number, ms: number): Promise<{ stats: StatsView, exactAfterMs: number | null }> {
  const t0 = performance.now()
  for (;;) {
    const stats = await adminStats(node)
    const elapsed = performance.now() - t0
    if (exact(stats, expected)) return { stats, exactAfterMs: elapsed }
    if (elapsed >= ms) return { stats, exactAfterMs: null }
    await sleep(50)
  }
}

interface ChurnResult {
  readonly clients: number
  readonly seconds: number
  readonly connects: number
  readonly connectsPerSecond: number
  readonly failures: number
  readonly expectedOnline: number
  readonly statsBefore: StatsView
  readonly exactWithinTwoHeartbeats: boolean
  readonly exactAfterMs: number | null
  readonly statsAtTwoHeartbeats: StatsView
  /** A second look, 3 heartbeats later: still exact (nothing came back to haunt the count)? */
  readonly statsLater: StatsView
  readonly exactLater: boolean
}

async function measureChurn (args: Args, a: PushlineProcess, b: PushlineProcess, runId: string): Promise<ChurnResult> {
  const statsBefore = await adminStats(a)
  const base = statsBefore.online
  const worker = Worker.spawn('churn')
  try {
    const clientIds = Array.from({ length: args.churnClients }, (_v, i) => `churn-${runId}-${i}`)
    const r = await worker.request({ type: 'churn', host: a.host, ports: [a.mqttPort, b.mqttPort], clientIds, seconds: args.churnSeconds, finalEven: true }, 'churned', (args.churnSeconds + 60) * 1000)
    const expected = base + r.finalConnected
    const first = await waitExact(a, expected, 2 * args.heartbeatMs)
    await sleep(3 * args.heartbeatMs)
    const later = await adminStats(a)
    const result: ChurnResult = {
      clients: args.churnClients,
      seconds: r.seconds,
      connects: r.connects,
      connectsPerSecond: r.connects / r.seconds,
      failures: r.failures,
      expectedOnline: expected,
      statsBefore,
      exactWithinTwoHeartbeats: first.exactAfterMs !== null,
      exactAfterMs: first.exactAfterMs,
      statsAtTwoHeartbeats: first.stats,
      statsLater: later,
      exactLater: exact(later, expected)
    }
    log(`churn: ${fmtInt(r.connects)} connects in ${fmt(r.seconds, 1)} s (${fmtInt(result.connectsPerSecond)}/s), ${r.failures} failures; expected online ${expected}, stats ${JSON.stringify(first.stats)}`)
    return result
  } finally {
    await worker.stop()
  }
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const runId = randomUUID().slice(0, 8)
  const startedAt = new Date().toISOString()
  const machine = machineInfo()
  log(`run ${runId}: rates ${args.rates.join(', ')} msg/s, qos ${args.qos.join(', ')}, ${args.subscribers} subscribers, targets ${args.targets.join(', ')}`)

  const latency: LatencyRow[] = []
  let churn: ChurnResult | undefined
  let redisVersion: string | undefined

  if (args.targets.includes('pushline-cluster')) {
    const main = args.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
    const services = await ensureServices(ROOT)
    onCleanup('services', async () => {
      if (services.startedHere) log('stopping the services this run started (scripts/services.sh down)')
      await services.stop()
    })
    const redisInfo = await redisServerInfo(services.redisUrl)
    redisVersion = redisInfo.version
    const prefix = `bench-xnode-${runId}:`
    onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(services.redisUrl, prefix)} Redis keys under ${prefix}`) })
    const nodes: PushlineProcess[] = []
    for (const id of ['a', 'b']) {
      const node = await startPushline({
        name: `pushline-${id}`,
        main,
        redisUrl: services.redisUrl,
        redisPrefix: prefix,
        keepLogs: args.keepLogs,
        env: {
          PUSHLINE_ROLE: 'all',
          PUSHLINE_NODE_ID: `bench-${runId}-${id}`,
          PUSHLINE_ALLOW_ANONYMOUS: 'true',
          PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true',
          PUSHLINE_LOG_LEVEL: 'warn',
          PUSHLINE_UPLINK_RATE_PER_SECOND: '0',
          PUSHLINE_HEARTBEAT_MS: String(args.heartbeatMs)
        }
      })
      onCleanup(`stop ${node.name}`, () => node.stop())
      nodes.push(node)
      log(`${node.name}: pid ${node.pid}, mqtt ${node.mqttPort}, http ${node.httpUrl}`)
    }
    const [a, b] = nodes as [PushlineProcess, PushlineProcess]
    for (const qos of args.qos) latency.push(...await measureLatency(args, 'pushline-cluster', a, b, nodes, qos, runId, redisInfo.pid))
    if (args.churnClients > 0) {
      // Let the latency clients' presence go first (they disconnected cleanly).
      await waitExact(a, 0, 2 * args.heartbeatMs)
      churn = await measureChurn(args, a, b, runId)
    }
    // Idle nodes would still share the cores with the Mosquitto measurement.
    await Promise.all(nodes.map((n) => n.stop()))
  }
  if (args.targets.includes('mosquitto')) {
    const mosq = await startMosquitto({ keepLogs: args.keepLogs })
    onCleanup('stop mosquitto', () => mosq.stop())
    for (const qos of args.qos) latency.push(...await measureLatency(args, 'mosquitto', mosq, mosq, [mosq], qos, runId))
    await mosq.stop()
  }

  // --- report ---
  const find = (t: TargetName, qos: number, rate: number): LatencyRow | undefined => latency.find((r) => r.target === t && r.qos === qos && r.rate === rate)
  const rows: string[][] = [['target', 'qos', 'msg/s', 'sent', 'lost', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'p50 ratio', 'p99 ratio', 'pub lag ms', 'broker CPU', 'redis', 'workers', 'other']]
  for (const r of latency) {
    const ref = find('mosquitto', r.qos, r.rate)
    const ratio = (x: number, y: number | undefined): string => r.target === 'mosquitto' || y === undefined ? '' : `${fmt(x / y, 1)}x`
    rows.push([r.target, String(r.qos), fmtInt(r.rate), fmtInt(r.sent), fmtInt(r.lost), fmt(r.p50Ms, 2), fmt(r.p90Ms, 2), fmt(r.p99Ms, 2), fmt(r.maxMs, 1),
      ratio(r.p50Ms, ref?.p50Ms), ratio(r.p99Ms, ref?.p99Ms), fmt(r.publisherLagMs, 1),
      Object.values(r.brokerCpu).map((c) => `${Math.round(c * 100)}%`).join(' + '),
      r.redisCpu === null ? '' : `${Math.round(r.redisCpu * 100)}%`, `${Math.round(r.workerCpu * 100)}%`, `${Math.round(r.otherCpu * 100)}%${r.otherCpu > 0.15 ? ' !' : ''}`])
  }
  const goalRow = find('pushline-cluster', 1, args.targetRate) ?? find('pushline-cluster', args.qos[0] as number, args.targetRate)
  const meets = goalRow === undefined ? null : goalRow.p99Ms <= args.targetP99Ms && goalRow.lost === 0
  const lines = [
    '',
    `Cross-node downlink latency: publisher on node A, ${args.subscribers} subscribers on node B (Mosquitto: one broker), ${args.seconds} s per rate after ${args.warmupSeconds} s warm-up, on ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}`,
    '',
    formatTable(rows),
    '',
    'ratio: pushline-cluster / mosquitto at the same QoS and rate. lost: sent − received in the recorded phase (after a drain wait). pub lag: how far the open-loop publisher fell behind schedule.',
    'CPU columns: CPU seconds per wall second of the recorded phase (100% = one core); broker: node A + node B for the cluster. other: the rest of the machine',
    '(this process and anyone else; irq excluded); "!" above 15%: something else competed for the cores, rerun on a quiet machine.',
    goalRow === undefined
      ? `goal: cross-node p99 <= ${args.targetP99Ms} ms at ${fmtInt(args.targetRate)} msg/s: not measured (rate not in --rates)`
      : `goal: cross-node p99 <= ${args.targetP99Ms} ms at ${fmtInt(args.targetRate)} msg/s (QoS ${goalRow.qos}): ${meets === true ? 'met' : 'NOT met'} (p99 ${fmt(goalRow.p99Ms, 2)} ms, lost ${fmtInt(goalRow.lost)})`,
    ''
  ]
  if (churn !== undefined) {
    lines.push(
      `Connection churn: ${churn.clients} clients connecting and disconnecting across 2 nodes for ${fmt(churn.seconds, 1)} s: ${fmtInt(churn.connects)} connects, ${fmtInt(churn.connectsPerSecond)} connects/s (each also a disconnect), ${churn.failures} failed`,
      `presence: expected online ${churn.expectedOnline}; ${churn.exactWithinTwoHeartbeats ? `exact after ${fmtInt(churn.exactAfterMs ?? 0)} ms` : `NOT exact within 2 heartbeats (${2 * args.heartbeatMs} ms)`}: online ${churn.statsAtTwoHeartbeats.online}, ` +
        churn.statsAtTwoHeartbeats.nodes.map((n) => `${n.nodeId} sessions ${n.sessions} presence ${n.presence} drift ${n.drift}`).join('; '),
      `3 heartbeats later: ${churn.exactLater ? 'still exact' : 'NOT exact'} (online ${churn.statsLater.online}, drift ${churn.statsLater.nodes.map((n) => n.drift).join('/')})`,
      ''
    )
  }
  process.stdout.write(lines.join('\n') + '\n')

  const report = {
    benchmark: 'cross-node-latency',
    description: 'cross-node downlink latency (publisher on node A, subscribers on node B, shared Redis) with Mosquitto as the single-broker reference; connection churn with presence exactness',
    runId,
    startedAt,
    finishedAt: new Date().toISOString(),
    params: { ...args, out: undefined, main: args.main ?? 'bench-results/build/src/main.js' },
    machine: { ...machine, mosquitto: args.targets.includes('mosquitto') ? await mosquittoVersion() : undefined, redis: redisVersion },
    summary: {
      goal: { p99Ms: args.targetP99Ms, rate: args.targetRate, measured: goalRow === undefined ? null : { qos: goalRow.qos, p99Ms: goalRow.p99Ms, lost: goalRow.lost }, met: meets },
      ratios: latency.filter((r) => r.target === 'pushline-cluster').map((r) => {
        const ref = find('mosquitto', r.qos, r.rate)
        return { qos: r.qos, rate: r.rate, p50: ref === undefined ? null : r.p50Ms / ref.p50Ms, p99: ref === undefined ? null : r.p99Ms / ref.p99Ms }
      })
    },
    latency,
    churn: churn ?? null
  }
  await writeReport(args.out, report)
  log(`wrote ${args.out}`)
  if (args.summary !== undefined) {
    const ref = goalRow === undefined ? undefined : find('mosquitto', goalRow.qos, goalRow.rate)
    const ms = (n: number | undefined): number | null => n === undefined || !Number.isFinite(n) ? null : Math.round(n * 100) / 100
    await writeSummary(args.summary, 'cross-node-latency', [
      figure({ name: `cross-node downlink p99 at ${fmtInt(args.targetRate)} msg/s, QoS ${goalRow?.qos ?? 1} (reference: one Mosquitto)`, unit: 'ms', ours: ms(goalRow?.p99Ms), reference: ms(ref?.p99Ms), target: `<= ${args.targetP99Ms}` }),
      figure({ name: `cross-node downlink p50 at ${fmtInt(args.targetRate)} msg/s`, unit: 'ms', ours: ms(goalRow?.p50Ms), reference: ms(ref?.p50Ms) }),
      figure({ name: `downlinks lost at ${fmtInt(args.targetRate)} msg/s`, unit: 'messages', ours: goalRow?.lost ?? null, reference: ref?.lost ?? null, target: '<= 0' })
    ], goalRow === undefined ? [`--rates has no ${args.targetRate} (--target-rate): the goal was not measured`] : [])
    log(`wrote ${args.summary}`)
  }
}

await runBench(main, USAGE)
