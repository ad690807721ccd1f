// Benchmark (prints figures; not a test): an open-loop QoS 0 flood against one node, with Mosquitto measured in
// the same run as the reference (docs/design.md: bare aedes fell below 1,000 msg/s and grew to gigabytes).
//
//   npm run bench:flood
//   npm run bench:flood -- --publishers 1000 --seconds 20 --variants telemetry,fanout --fanout-subscribers 10
//   npm run bench:flood -- --help
//
// Variants:
//   telemetry  --publishers raw clients, each publishing QoS 0 on devices/<its id>/telemetry as fast as TCP takes
//              it; one subscriber on devices/+/telemetry counts what is delivered.
//   fanout     the same publishers all on flood/fanout; --fanout-subscribers subscribers each count what they get
//              (delivered = the sum).
// Pushline runs embedded (in memory) with PUSHLINE_ALLOW_ANONYMOUS=true, so a subscriber may take other devices'
// topics; its other limits keep their defaults. Every second: messages delivered in that second and the broker's
// RSS. Figures: median delivered msg/s over the seconds after the first, the lowest second, peak RSS; for
// Pushline also the QoS 0 deliveries it dropped and the reads it paused (from /metrics).
// Results: a table on stdout, bench-results/flood.json, and with --summary <path> the common summary shape.
// Run big runs under `flock /tmp/pushline-bench.lock`.

import { fork, type ChildProcess } from 'node:child_process'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildPushline, mosquittoVersion, startMosquitto, startPushline, type BrokerProcess, type PushlineProcess } from './lib/brokers.ts'
import type { FloodParentMessage, FloodWorkerMessage } from './lib/flood-protocol.ts'
import { choiceList, intOption, isAlive, runBench, setDeadline, track, writeReport } from './lib/lifecycle.ts'
import { cpuSeconds, rssBytes } from './lib/proc.ts'
import { fmt, fmtBytes, fmtInt, formatTable, machineInfo, median } from './lib/stats.ts'
import { figure, writeSummary, type SummaryFigure } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const WORKER = fileURLToPath(new URL('./lib/flood-worker.ts', import.meta.url))
const TSX_LOADER = import.meta.resolve('tsx')

const USAGE = `usage: npm run bench:flood -- [options]

  --publishers N          flooding clients (default 1000)
  --publisher-workers N   processes they are spread over (default 2)
  --seconds N             flood duration per variant and broker (default 15)
  --payload-bytes N       payload of each message (default 32)
  --variants LIST         telemetry, fanout (default both)
  --fanout-subscribers N  subscribers of the fanout variant (default 10)
  --targets LIST          pushline, mosquitto (default both)
  --main PATH             compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH              JSON result (default bench-results/flood.json)
  --summary PATH          also write the common summary shape (bench/lib/summary.ts) there
  --max-seconds N         abort the whole run after this long (default 900)
  --help`

const VARIANTS = ['telemetry', 'fanout'] as const
const TARGETS = ['pushline', 'mosquitto'] as const
type Variant = typeof VARIANTS[number]
type Target = typeof TARGETS[number]

interface Args {
  readonly publishers: number
  readonly publisherWorkers: number
  readonly seconds: number
  readonly payloadBytes: number
  readonly variants: readonly Variant[]
  readonly fanoutSubscribers: number
  readonly targets: readonly Target[]
  readonly main: string | undefined
  readonly out: string
  readonly summary: string | undefined
  readonly maxSeconds: number
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      publishers: { type: 'string', default: '1000' },
      'publisher-workers': { type: 'string', default: '2' },
      seconds: { type: 'string', default: '15' },
      'payload-bytes': { type: 'string', default: '32' },
      variants: { type: 'string', default: VARIANTS.join(',') },
      'fanout-subscribers': { type: 'string', default: '10' },
      targets: { type: 'string', default: TARGETS.join(',') },
      main: { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'bench-results/flood.json') },
      summary: { type: 'string' },
      'max-seconds': { type: 'string', default: '900' },
      help: { type: 'boolean', default: false }
    },
    strict: true
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  const publishers = intOption('publishers', values.publishers, 1, 15_000)
  return {
    publishers,
    publisherWorkers: intOption('publisher-workers', values['publisher-workers'], 1, Math.min(16, publishers)),
    seconds: intOption('seconds', values.seconds, 3, 300),
    payloadBytes: intOption('payload-bytes', values['payload-bytes'], 1, 65_536),
    variants: choiceList('variants', values.variants, VARIANTS),
    fanoutSubscribers: intOption('fanout-subscribers', values['fanout-subscribers'], 1, 1000),
    targets: choiceList('targets', values.targets, TARGETS),
    main: values.main,
    out: values.out,
    summary: values.summary,
    maxSeconds: intOption('max-seconds', values['max-seconds'], 30, 3600)
  }
}

function log (line: string): void {
  process.stderr.write(`bench: ${line}\n`)
}

/** A forked flood-worker.ts: its latest cumulative count, and its ready answer. */
class Worker {
  count = 0
  /** Every report with the time the worker took it, so a late IPC message does not move messages between seconds. */
  readonly samples: Array<{ at: number, count: number }> = []
  private failure: Error | undefined
  private ready: ((m: Extract<FloodWorkerMessage, { type: 'ready' }>) => void) | undefined

  constructor (readonly name: string, readonly child: ChildProcess) {
    child.on('message', (m: FloodWorkerMessage) => {
      if (m.type === 'count') {
        this.count = m.count
        this.samples.push({ at: m.at, count: m.count })
      } else if (m.type === 'ready') this.ready?.(m)
      else this.failure ??= new Error(`worker ${name} failed: ${m.message}`)
    })
    child.once('exit', (code, signal) => { this.failure ??= new Error(`worker ${name} exited (code ${code}, signal ${signal})`) })
  }

  static spawn (name: string): Worker {
    return new Worker(name, track(fork(WORKER, [], { execArgv: ['--import', TSX_LOADER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })))
  }

  check (): void {
    if (this.failure !== undefined) throw this.failure
  }

  async connect (m: Extract<FloodParentMessage, { type: 'connect' }>, timeoutMs = 120_000): Promise<{ connected: number, refused: number }> {
    const reply = new Promise<{ connected: number, refused: number }>((resolve) => { this.ready = resolve })
    this.child.send(m)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const r = await Promise.race([reply, sleep(100).then(() => undefined)])
      if (r !== undefined) return r
      this.check()
      if (Date.now() > deadline) throw new Error(`worker ${this.name}: not connected within ${timeoutMs} ms`)
    }
  }

  send (m: FloodParentMessage): void {
    if (isAlive(this.child) && this.child.connected) this.child.send(m)
  }

  async stop (): Promise<void> {
    if (!isAlive(this.child)) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.disconnect()
    const timer = setTimeout(() => { if (isAlive(this.child)) this.child.kill('SIGKILL') }, 5000)
    await exited
    clearTimeout(timer)
  }
}

interface Run {
  readonly target: Target
  readonly variant: Variant
  readonly publishersConnected: number
  readonly refused: number
  readonly subscribers: number
  /** Messages delivered to subscribers, per second of the flood. */
  readonly deliveredPerSecond: number[]
  /** Messages the publishers' sockets took, per second. */
  readonly offeredPerSecond: number[]
  readonly rssBytes: number[]
  readonly medianDelivered: number
  /** Delivered from the end of the first second to the end, over the subscriber's own clock: robust to late reports. */
  readonly meanDelivered: number
  readonly lowestDelivered: number
  readonly peakRssBytes: number
  readonly brokerCpuShare: number
  /** Pushline only, from /metrics. */
  readonly dropped?: number
  readonly pausedReads?: number
}

/** The worker's count at wall-clock time `at`, interpolated between its reports. */
function countAt (samples: ReadonlyArray<{ at: number, count: number }>, at: number): number {
  let before = { at: -Infinity, count: 0 }
  for (const s of samples) {
    if (s.at <= at) before = s
    else return before.at === -Infinity ? s.count : before.count + (s.count - before.count) * (at - before.at) / (s.at - before.at)
  }
  return before.count
}

async function metric (httpUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.split(' ').pop())
  return sum
}

async function floodOnce (args: Args, target: Target, variant: Variant, broker: BrokerProcess, httpUrl: string | undefined): Promise<Run> {
  const subscriberCount = variant === 'fanout' ? args.fanoutSubscribers : 1
  const sub = Worker.spawn(`${target}-${variant}-sub`)
  const pubs = Array.from({ length: args.publisherWorkers }, (_, i) => Worker.spawn(`${target}-${variant}-pub${i}`))
  try {
    await sub.connect({ type: 'connect', role: 'sub', host: broker.host, port: broker.mqttPort, clients: subscriberCount, idPrefix: `flood-sub-${variant}`, topic: variant === 'fanout' ? 'flood/fanout' : 'devices/+/telemetry', payloadBytes: 0 })
    let connected = 0
    let refused = 0
    for (const [i, w] of pubs.entries()) {
      const share = Math.floor(args.publishers / pubs.length) + (i < args.publishers % pubs.length ? 1 : 0)
      const r = await w.connect({ type: 'connect', role: 'pub', host: broker.host, port: broker.mqttPort, clients: share, idPrefix: `flood-${variant}-${i}`, topic: variant === 'fanout' ? 'flood/fanout' : 'devices/{id}/telemetry', payloadBytes: args.payloadBytes })
      connected += r.connected
      refused += r.refused
    }
    log(`${target} ${variant}: ${connected} publishers (${refused} refused), ${subscriberCount} subscriber(s); flooding ${args.seconds} s`)

    const delivered: number[] = []
    const offered: number[] = []
    const rss: number[] = []
    const cpu0 = cpuSeconds(broker.pid)
    const t0 = performance.now()
    const wall0 = Date.now()
    for (const w of pubs) w.send({ type: 'go' })
    let lastDelivered = sub.count
    let lastOffered = 0
    for (let s = 0; s < args.seconds; s++) {
      await sleep(1000 - ((performance.now() - t0) % 1000))
      for (const w of [sub, ...pubs]) w.check()
      const why = broker.unexpectedExit()
      if (why !== undefined) throw new Error(why)
      const d = sub.count
      const o = pubs.reduce((sum, w) => sum + w.count, 0)
      delivered.push(d - lastDelivered)
      offered.push(o - lastOffered)
      lastDelivered = d
      lastOffered = o
      rss.push(rssBytes(broker.pid))
      log(`  ${s + 1}s delivered ${fmtInt(delivered.at(-1) ?? 0)}/s, offered ${fmtInt(offered.at(-1) ?? 0)}/s, RSS ${fmtBytes(rss.at(-1) ?? 0)}`)
    }
    const brokerCpuShare = (cpuSeconds(broker.pid) - cpu0) / ((performance.now() - t0) / 1000)
    // One more report after the last second, then the per-second figures from the subscriber's own timestamps (the
    // live lines above use whatever report had arrived, which a busy worker sends late).
    await sleep(400)
    for (const w of pubs) w.send({ type: 'stop' })
    const at = (k: number): number => countAt(sub.samples, wall0 + k * 1000)
    const perSecond = Array.from({ length: args.seconds }, (_, k) => Math.round(at(k + 1) - at(k)))
    delivered.splice(0, delivered.length, ...perSecond)
    const steady = delivered.slice(1)
    const run: Run = {
      target,
      variant,
      publishersConnected: connected,
      refused,
      subscribers: subscriberCount,
      deliveredPerSecond: delivered,
      offeredPerSecond: offered,
      rssBytes: rss,
      medianDelivered: median(steady),
      meanDelivered: (at(args.seconds) - at(1)) / (args.seconds - 1),
      lowestDelivered: Math.min(...steady),
      peakRssBytes: Math.max(...rss),
      brokerCpuShare,
      ...(httpUrl !== undefined && {
        dropped: await metric(httpUrl, 'pushline_deliveries_dropped_total'),
        pausedReads: await metric(httpUrl, 'pushline_publishers_paused_total')
      })
    }
    return run
  } finally {
    await Promise.all([sub, ...pubs].map(async (w) => { await w.stop() }))
  }
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const machine = machineInfo()
  const startedAt = new Date().toISOString()
  let mainJs = args.main
  if (args.targets.includes('pushline') && mainJs === undefined) {
    log('compiling src/ into bench-results/build')
    mainJs = await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  }

  const runs: Run[] = []
  for (const variant of args.variants) {
    for (const target of args.targets) {
      // A fresh broker per run: what one flood left behind must not weigh on the next.
      let broker: BrokerProcess | PushlineProcess
      let httpUrl: string | undefined
      if (target === 'pushline') {
        const p = await startPushline({ name: `flood-${variant}`, main: mainJs as string, env: { PUSHLINE_ALLOW_ANONYMOUS: 'true' } })
        broker = p
        httpUrl = p.httpUrl
      } else {
        broker = await startMosquitto({ name: `mosquitto-${variant}` })
      }
      try {
        runs.push(await floodOnce(args, target, variant, broker, httpUrl))
      } finally {
        await broker.stop()
      }
      // Let the machine settle between runs.
      await sleep(2000)
    }
  }

  const find = (target: Target, variant: Variant): Run | undefined => runs.find((r) => r.target === target && r.variant === variant)
  const rows: string[][] = [['variant', 'broker', 'publishers', 'subs', 'delivered msg/s (mean)', '(median)', 'lowest second', 'offered msg/s', 'peak RSS', 'broker CPU', 'dropped', 'paused reads', 'ratio (delivered)', 'ratio (RSS)']]
  for (const r of runs) {
    const ref = find('mosquitto', r.variant)
    const isOurs = r.target === 'pushline'
    rows.push([
      r.variant, r.target, fmtInt(r.publishersConnected), String(r.subscribers), fmtInt(r.meanDelivered), fmtInt(r.medianDelivered), fmtInt(r.lowestDelivered),
      fmtInt(median(r.offeredPerSecond.slice(1))), fmtBytes(r.peakRssBytes), `${fmt(r.brokerCpuShare * 100, 0)}%`,
      r.dropped === undefined ? '' : fmtInt(r.dropped), r.pausedReads === undefined ? '' : fmtInt(r.pausedReads),
      isOurs && ref !== undefined ? fmt(r.meanDelivered / ref.meanDelivered, 2) : '',
      isOurs && ref !== undefined ? fmt(r.peakRssBytes / ref.peakRssBytes, 1) : ''
    ])
  }
  process.stdout.write([
    `QoS 0 flood: ${args.publishers} publishers × ${args.payloadBytes} B payloads, open loop, ${args.seconds} s per run, on ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}`,
    '',
    formatTable(rows),
    '',
    'delivered: messages the subscribers received per second after the first second (mean over the subscriber\'s clock, median and lowest of the single seconds). offered: what the publishers\' sockets took (the kernel buffers swallow a lot in the first second).',
    'ratio: pushline / mosquitto in the same run. dropped: QoS 0 deliveries Pushline dropped (slow subscriber or overloaded node); paused reads: times it stopped reading a connection until it caught up.',
    ''
  ].join('\n') + '\n')

  const report = {
    benchmark: 'flood',
    startedAt,
    finishedAt: new Date().toISOString(),
    params: { ...args, main: args.main ?? 'bench-results/build/src/main.js' },
    machine: { ...machine, mosquitto: args.targets.includes('mosquitto') ? await mosquittoVersion() : undefined },
    runs
  }
  await writeReport(args.out, report)
  log(`wrote ${args.out}`)

  if (args.summary !== undefined) {
    const figures: SummaryFigure[] = []
    for (const variant of args.variants) {
      const ours = find('pushline', variant)
      const ref = find('mosquitto', variant)
      figures.push(figure({ name: `flood ${variant}: delivered (mean after the first second)`, unit: 'msg/s', ours: ours === undefined ? null : Math.round(ours.meanDelivered), reference: ref === undefined ? null : Math.round(ref.meanDelivered) }))
      figures.push(figure({ name: `flood ${variant}: lowest second`, unit: 'msg/s', ours: ours?.lowestDelivered ?? null, reference: ref?.lowestDelivered ?? null, target: '>= 1000' }))
      figures.push(figure({ name: `flood ${variant}: peak RSS`, unit: 'MB', ours: ours === undefined ? null : Math.round(ours.peakRssBytes / 1e6), reference: ref === undefined ? null : Math.round(ref.peakRssBytes / 1e6), target: '<= 1000' }))
    }
    await writeSummary(args.summary, 'flood', figures, [`${args.publishers} publishers, ${args.payloadBytes} B, ${args.seconds} s per run; Pushline embedded, anonymous`])
    log(`wrote ${args.summary}`)
  }
}

await runBench(main, USAGE)
