// Benchmark (prints figures; not a test): how many idle authenticated MQTT connections Pushline holds, and what
// each costs in memory, with Mosquitto holding the same number of plain connections in the same run.
//
//   npm run bench:idle                                   # = npx tsx bench/idle-connections.ts
//   npx tsx bench/idle-connections.ts --parts one-node --connections 19000 --heap-snapshot
//   npx tsx bench/idle-connections.ts --help
//
// one-node  --connections (19,000) authenticated connections (tokens in Redis) on ONE node, which must hold
//           them within its 20,000 open files. Memory per connection = (RSS with the connections open − RSS
//           idle) / connections, read twice: as found, and after a full garbage collection in both states
//           (forced over the inspector, bench/lib/inspector.ts), with the V8 heap per connection beside it.
//           Mosquitto, anonymous, holds the same number of connections as the reference.
// cluster   --cluster-connections (100,000) across --nodes (6) node processes sharing one Redis, loaded node
//           after node by two load processes each, from distinct 127.0.0.x source addresses; then every
//           node's open sockets and the cluster's presence count (GET /v1/admin/stats) are checked.
//
// Connections are raw MQTT 3.1.1 (bench/lib/connect-worker.ts): CONNECT, CONNACK, then nothing (keepalive 600 s),
// closed with RST at the end. Results: a table on stdout and bench-results/idle-connections.json.

import { randomUUID } from 'node:crypto'
import { join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildPushline, mosquittoVersion, startMosquitto, startPushline, type BrokerProcess, type PushlineProcess } from './lib/brokers.ts'
import { prepareConnectLoad, MAX_CONNECTIONS_PER_WORKER, type ConnectCredentials, type ConnectLoad, type ConnectLoadResult } from './lib/connect-load.ts'
import { anonymousClients, deleteRedisPrefix, deviceClients, deviceIds, seedRedisTokens } from './lib/devices.ts'
import { connectInspector, type MemoryUsage } from './lib/inspector.ts'
import { choiceList, commonOptions, exitOnHelp, intOption, onCleanup, runBench, splitList, setDeadline, UsageError, writeReport } from './lib/lifecycle.ts'
import { freePort, openFds, rssBytes, waitForQuiet } from './lib/proc.ts'
import { ensureServices } from './lib/services.ts'
import { fmt, fmtBytes, fmtInt, formatTable, machineInfo } from './lib/stats.ts'
import { figure, writeSummary, type SummaryFigure } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const PARTS = ['one-node', 'cluster'] as const
type Part = typeof PARTS[number]
/** Sockets a node holds besides the devices' (Redis, listeners, inspector, logs): the rest of its 20,000 files. */
const NODE_FD_RESERVE = 400

const USAGE = `usage: npx tsx bench/idle-connections.ts [options]

  --parts LIST                one-node, cluster (default both)
  --connections N             idle connections on one node, and on Mosquitto (default 19000, at most ${20_000 - NODE_FD_RESERVE})
  --cluster-connections N     idle connections across the cluster (default 100000)
  --nodes N                   node processes of the cluster part (default 6)
  --no-reference              one-node part without Mosquitto
  --concurrency N             connects in flight per load process (default 100)
  --settle-ms N               idle time after the last CONNACK before reading memory (default 30000)
  --heap-snapshot             write heap snapshots of the idle and the loaded node (one-node part) to bench-results/profiles/
  --node-args LIST            extra node flags for the Pushline processes, comma-separated (to try an idea)
  --target-kb N               goal: resident memory per connection, KB of 1,000 bytes (default 10)
  --main PATH                 compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH                  JSON result (default bench-results/idle-connections.json)
  --summary PATH              also write the key figures in the suite's common shape (bench/lib/summary.ts)
  --max-seconds N             abort the whole run after this long (default 900)
  --keep-logs                 keep the brokers' temp dirs with their logs
  --help`

interface Args {
  readonly parts: readonly Part[]
  readonly connections: number
  readonly clusterConnections: number
  readonly nodes: number
  readonly reference: boolean
  readonly concurrency: number
  readonly settleMs: number
  readonly heapSnapshot: boolean
  readonly nodeArgs: readonly string[]
  readonly targetKb: number
  readonly main: string | undefined
  readonly out: string
  readonly summary: string | undefined
  readonly maxSeconds: number
  readonly keepLogs: boolean
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      parts: { type: 'string', default: PARTS.join(',') },
      connections: { type: 'string', default: '19000' },
      'cluster-connections': { type: 'string', default: '100000' },
      nodes: { type: 'string', default: '6' },
      'no-reference': { type: 'boolean', default: false },
      concurrency: { type: 'string', default: '100' },
      'settle-ms': { type: 'string', default: '30000' },
      'heap-snapshot': { type: 'boolean', default: false },
      'node-args': { type: 'string', default: '' },
      'target-kb': { type: 'string', default: '10' },
      ...commonOptions(ROOT, 'idle-connections', 900)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const int = intOption
  const parts = choiceList('parts', values.parts, PARTS, 'part')
  const args: Args = {
    parts: [...new Set(parts)],
    connections: int('connections', values.connections, 1, 20_000 - NODE_FD_RESERVE),
    clusterConnections: int('cluster-connections', values['cluster-connections'], 1, 200_000),
    nodes: int('nodes', values.nodes, 1, 12),
    reference: !values['no-reference'],
    concurrency: int('concurrency', values.concurrency, 1, 1000),
    settleMs: int('settle-ms', values['settle-ms'], 0, 60_000),
    heapSnapshot: values['heap-snapshot'],
    nodeArgs: splitList(values['node-args']),
    targetKb: Number(values['target-kb']),
    main: values.main === undefined ? undefined : resolve(values.main),
    out: resolve(values.out),
    summary: values.summary === undefined ? undefined : resolve(values.summary),
    maxSeconds: int('max-seconds', values['max-seconds'], 10, 24 * 3600),
    keepLogs: values['keep-logs']
  }
  if (!Number.isFinite(args.targetKb) || args.targetKb <= 0) throw new UsageError(`--target-kb must be a positive number, got "${values['target-kb']}"`)
  if (args.clusterConnections / args.nodes > 20_000 - NODE_FD_RESERVE) throw new UsageError(`${args.clusterConnections} connections over ${args.nodes} nodes is more than ${20_000 - NODE_FD_RESERVE} per node (open-file limit): raise --nodes`)
  return args
}

const log = (line: string): void => { process.stderr.write(`bench: ${line}\n`) }
const KB = 1000

/** Two load processes per broker, each from its own source address (127.0.0.2 upwards), so no ephemeral port range runs out. */
function sourceAddresses (brokerIndex: number): string[] {
  return [2 + 2 * brokerIndex, 3 + 2 * brokerIndex].map((n) => `127.0.0.${n}`)
}

async function holdConnections (broker: BrokerProcess, clients: readonly ConnectCredentials[], brokerIndex: number, args: Args): Promise<{ load: ConnectLoad, result: ConnectLoadResult }> {
  const workers = Math.max(2, Math.ceil(clients.length / MAX_CONNECTIONS_PER_WORKER))
  const load = await prepareConnectLoad({
    host: broker.host,
    port: broker.mqttPort,
    localAddresses: sourceAddresses(brokerIndex),
    clients,
    workers,
    concurrency: args.concurrency,
    keepaliveSeconds: 600,
    connectTimeoutMs: 30_000,
    maxLifetimeMs: args.maxSeconds * 1000
  })
  onCleanup(`connections to ${broker.name}`, () => load.kill())
  const result = await load.run()
  return { load, result }
}

interface MemoryReading {
  readonly rssBytes: number
  /** After a forced full GC (Pushline only). */
  readonly gc?: MemoryUsage
  readonly fds: number
}

interface OneNodeResult {
  readonly target: 'pushline' | 'mosquitto'
  readonly description: string
  readonly attempted: number
  readonly accepted: number
  readonly failed: number
  readonly droppedAfterConnack: number
  /** Sockets the broker held with the connections open, minus those it held idle. */
  readonly heldSockets: number
  readonly connectSeconds: number
  readonly idle: MemoryReading
  /** As found, some time after the last CONNACK. */
  readonly loadedRssBytes: number
  /** After a forced GC (Pushline); the same reading as loadedRssBytes for Mosquitto. */
  readonly loaded: MemoryReading
  readonly rssPerConnection: number
  readonly rssPerConnectionAfterGc: number
  readonly heapUsedPerConnection: number | null
  readonly externalPerConnection: number | null
  readonly heapSnapshot: string | null
}

function perConnection (delta: number, n: number): number {
  return n === 0 ? Number.NaN : delta / n
}

async function oneNodePushline (args: Args, ctx: Ctx): Promise<OneNodeResult> {
  const prefix = `bench-idle-${ctx.runId}-one:`
  onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(ctx.redisUrl, prefix)} Redis keys under ${prefix}`) })
  const inspectPort = await freePort()
  const broker = await startPushline({ name: 'pushline-one-node', main: ctx.main, redisUrl: ctx.redisUrl, redisPrefix: prefix, nodeArgs: [...args.nodeArgs, `--inspect=127.0.0.1:${inspectPort}`], keepLogs: args.keepLogs })
  onCleanup('stop pushline-one-node', () => broker.stop())
  const inspector = await connectInspector(inspectPort)
  onCleanup('close inspector', () => inspector.close())
  log(`pushline pid ${broker.pid} on ${broker.host}:${broker.mqttPort} (Redis prefix ${prefix})`)
  const devices = await seedRedisTokens({ redisUrl: ctx.redisUrl, prefix, deviceIds: deviceIds(`idle${ctx.runId}`, args.connections) })
  await waitForQuiet(broker.pid, { timeoutMs: 30_000 })
  const idle = await settledReading(broker.pid, inspector)
  const snapshotBase = join(ROOT, `bench-results/profiles/idle-${ctx.runId}-base.heapsnapshot`)
  if (args.heapSnapshot) {
    // The idle node first, so that heap-summary --base can subtract what is not per connection.
    await inspector.heapSnapshot(snapshotBase)
    await inspector.collectGarbage()
  }
  const { load, result } = await holdConnections(broker, deviceClients(devices), 0, args)
  log(`pushline: ${fmtInt(result.accepted)}/${fmtInt(result.attempted)} accepted in ${fmt(result.wallSeconds, 1)} s`)
  await sleep(args.settleMs)
  await waitForQuiet(broker.pid, { timeoutMs: 30_000 })
  const loadedRssBytes = rssBytes(broker.pid)
  const loaded = await settledReading(broker.pid, inspector)
  let heapSnapshot: string | null = null
  if (args.heapSnapshot) {
    heapSnapshot = join(ROOT, `bench-results/profiles/idle-${ctx.runId}.heapsnapshot`)
    log(`writing ${heapSnapshot}`)
    await inspector.heapSnapshot(heapSnapshot)
  }
  const { droppedAfterConnack } = await load.release()
  inspector.close()
  await broker.stop()
  const gcIdle = idle.gc as MemoryUsage
  const gcLoaded = loaded.gc as MemoryUsage
  return {
    target: 'pushline',
    description: 'Pushline, one node, Redis mode (tokens, sessions and presence in Redis), Kafka off',
    ...counts(result, droppedAfterConnack),
    heldSockets: loaded.fds - idle.fds,
    idle,
    loadedRssBytes,
    loaded,
    rssPerConnection: perConnection(loadedRssBytes - idle.rssBytes, result.accepted),
    rssPerConnectionAfterGc: perConnection(loaded.rssBytes - idle.rssBytes, result.accepted),
    heapUsedPerConnection: perConnection(gcLoaded.heapUsed - gcIdle.heapUsed, result.accepted),
    externalPerConnection: perConnection(gcLoaded.external - gcIdle.external, result.accepted),
    heapSnapshot
  }
}

/** RSS and heap after a forced full GC, once the collector's work has left the RSS. */
async function settledReading (pid: number, inspector: Awaited<ReturnType<typeof connectInspector>>): Promise<MemoryReading> {
  await inspector.collectGarbage()
  await sleep(500)
  return { rssBytes: rssBytes(pid), gc: await inspector.memoryUsage(), fds: openFds(pid) }
}

function counts (result: ConnectLoadResult, droppedAfterConnack: number): Pick<OneNodeResult, 'attempted' | 'accepted' | 'failed' | 'droppedAfterConnack' | 'connectSeconds'> {
  return {
    attempted: result.attempted,
    accepted: result.accepted,
    failed: result.attempted - result.accepted,
    droppedAfterConnack,
    connectSeconds: result.wallSeconds
  }
}

async function oneNodeMosquitto (args: Args, ctx: Ctx): Promise<OneNodeResult> {
  const broker = await startMosquitto({ name: 'mosquitto', keepLogs: args.keepLogs })
  onCleanup('stop mosquitto', () => broker.stop())
  const version = await mosquittoVersion()
  log(`mosquitto ${version} pid ${broker.pid} on ${broker.host}:${broker.mqttPort}`)
  const idle: MemoryReading = { rssBytes: rssBytes(broker.pid), fds: openFds(broker.pid) }
  const { load, result } = await holdConnections(broker, anonymousClients(deviceIds(`m${ctx.runId}`, args.connections)), 1, args)
  log(`mosquitto: ${fmtInt(result.accepted)}/${fmtInt(result.attempted)} accepted in ${fmt(result.wallSeconds, 1)} s`)
  await sleep(args.settleMs)
  const loaded: MemoryReading = { rssBytes: rssBytes(broker.pid), fds: openFds(broker.pid) }
  const { droppedAfterConnack } = await load.release()
  await broker.stop()
  const rss = perConnection(loaded.rssBytes - idle.rssBytes, result.accepted)
  return {
    target: 'mosquitto',
    description: `Mosquitto ${version}, anonymous (reference)`,
    ...counts(result, droppedAfterConnack),
    heldSockets: loaded.fds - idle.fds,
    idle,
    loadedRssBytes: loaded.rssBytes,
    loaded,
    rssPerConnection: rss,
    rssPerConnectionAfterGc: rss,
    heapUsedPerConnection: null,
    externalPerConnection: null,
    heapSnapshot: null
  }
}

interface ClusterNodeReading {
  readonly name: string
  readonly accepted: number
  readonly heldSockets: number
  readonly idleRssBytes: number
  readonly loadedRssBytes: number
}

interface ClusterResult {
  readonly nodes: readonly ClusterNodeReading[]
  readonly attempted: number
  readonly accepted: number
  readonly droppedAfterConnack: number
  readonly heldSockets: number
  /** GET /v1/admin/stats: devices online cluster-wide (presence in Redis). */
  readonly online: number | null
  readonly connectSeconds: number
  readonly rssPerConnection: number
}

async function cluster (args: Args, ctx: Ctx): Promise<ClusterResult> {
  const prefix = `bench-idle-${ctx.runId}-cluster:`
  onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(ctx.redisUrl, prefix)} Redis keys under ${prefix}`) })
  const nodes: PushlineProcess[] = []
  for (let i = 0; i < args.nodes; i++) {
    const node = await startPushline({
      name: `pushline-${i}`,
      main: ctx.main,
      redisUrl: ctx.redisUrl,
      redisPrefix: prefix,
      nodeArgs: args.nodeArgs,
      keepLogs: args.keepLogs,
      env: { PUSHLINE_NODE_ID: `bench-idle-${ctx.runId}-${i}` }
    })
    onCleanup(`stop ${node.name}`, () => node.stop())
    nodes.push(node)
  }
  log(`${args.nodes} nodes up (pids ${nodes.map((n) => n.pid).join(', ')}); seeding ${fmtInt(args.clusterConnections)} tokens`)
  const devices = await seedRedisTokens({ redisUrl: ctx.redisUrl, prefix, deviceIds: deviceIds(`c${ctx.runId}`, args.clusterConnections) })
  const clients = deviceClients(devices)
  const idle = await Promise.all(nodes.map(async (n) => { await waitForQuiet(n.pid, { timeoutMs: 30_000 }); return { rss: rssBytes(n.pid), fds: openFds(n.pid) } }))
  const loads: ConnectLoad[] = []
  const results: ConnectLoadResult[] = []
  const t0 = performance.now()
  for (const [i, node] of nodes.entries()) {
    const share = clients.filter((_, j) => j % args.nodes === i)
    const { load, result } = await holdConnections(node, share, i, args)
    loads.push(load)
    results.push(result)
    log(`${node.name}: ${fmtInt(result.accepted)}/${fmtInt(result.attempted)} accepted in ${fmt(result.wallSeconds, 1)} s`)
  }
  const connectSeconds = (performance.now() - t0) / 1000
  await sleep(args.settleMs)
  await Promise.all(nodes.map((n) => waitForQuiet(n.pid, { timeoutMs: 30_000 })))
  const readings: ClusterNodeReading[] = nodes.map((n, i) => ({
    name: n.name,
    accepted: (results[i] as ConnectLoadResult).accepted,
    heldSockets: openFds(n.pid) - (idle[i] as { fds: number }).fds,
    idleRssBytes: (idle[i] as { rss: number }).rss,
    loadedRssBytes: rssBytes(n.pid)
  }))
  const online = await onlineCount(nodes[0] as PushlineProcess)
  let dropped = 0
  for (const load of loads) dropped += (await load.release()).droppedAfterConnack
  await Promise.all(nodes.map((n) => n.stop()))
  const accepted = results.reduce((s, r) => s + r.accepted, 0)
  return {
    nodes: readings,
    attempted: results.reduce((s, r) => s + r.attempted, 0),
    accepted,
    droppedAfterConnack: dropped,
    heldSockets: readings.reduce((s, r) => s + r.heldSockets, 0),
    online,
    connectSeconds,
    rssPerConnection: perConnection(readings.reduce((s, r) => s + r.loadedRssBytes - r.idleRssBytes, 0), accepted)
  }
}

async function onlineCount (node: PushlineProcess): Promise<number | null> {
  try {
    const res = await fetch(`${node.httpUrl}/v1/admin/stats`, { headers: { authorization: `Bearer ${node.adminKey}` }, signal: AbortSignal.timeout(30_000) })
    if (!res.ok) return null
    return (await res.json() as { online: number }).online
  } catch {
    return null
  }
}

interface Ctx {
  readonly runId: string
  readonly main: string
  readonly redisUrl: string
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const runId = randomUUID().slice(0, 8)
  const startedAt = new Date().toISOString()
  log(`run ${runId}: parts ${args.parts.join(', ')}; ${fmtInt(args.connections)} on one node, ${fmtInt(args.clusterConnections)} over ${args.nodes} nodes`)
  const mainJs = args.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  const services = await ensureServices(ROOT)
  onCleanup('services', async () => {
    if (services.startedHere) log('stopping the services this run started (scripts/services.sh down)')
    await services.stop()
  })
  const ctx: Ctx = { runId, main: mainJs, redisUrl: services.redisUrl }

  const oneNode: OneNodeResult[] = []
  let clusterResult: ClusterResult | undefined
  if (args.parts.includes('one-node')) {
    oneNode.push(await oneNodePushline(args, ctx))
    if (args.reference) oneNode.push(await oneNodeMosquitto(args, ctx))
  }
  if (args.parts.includes('cluster')) clusterResult = await cluster(args, ctx)

  const ours = oneNode.find((r) => r.target === 'pushline')
  const ref = oneNode.find((r) => r.target === 'mosquitto')
  const kb = (n: number | null | undefined): number | null => n === null || n === undefined || !Number.isFinite(n) ? null : Math.round(n / KB * 100) / 100
  const lines: string[] = ['']
  if (oneNode.length > 0) {
    lines.push(`Idle connections on one broker: ${fmtInt(args.connections)} raw MQTT 3.1.1 connections`, '', formatTable([
      ['target', 'accepted', 'held', 'dropped', 'connect s', 'RSS idle', 'RSS loaded', 'RSS/conn', 'after GC: RSS/conn', 'heap/conn', 'external/conn'],
      ...oneNode.map((r) => [r.target, fmtInt(r.accepted), fmtInt(r.heldSockets), fmtInt(r.droppedAfterConnack), fmt(r.connectSeconds, 1), fmtBytes(r.idle.rssBytes), fmtBytes(r.loadedRssBytes),
        fmtBytes(r.rssPerConnection), fmtBytes(r.rssPerConnectionAfterGc), r.heapUsedPerConnection === null ? '-' : fmtBytes(r.heapUsedPerConnection), r.externalPerConnection === null ? '-' : fmtBytes(r.externalPerConnection)])
    ]), '')
    if (ours !== undefined) {
      lines.push(`goal: resident memory per connection <= ${args.targetKb} KB (1 KB = 1,000 bytes): ${ours.rssPerConnectionAfterGc <= args.targetKb * KB ? 'met' : 'NOT met'} (${fmt(ours.rssPerConnectionAfterGc / KB, 2)} KB after GC, ${fmt(ours.rssPerConnection / KB, 2)} KB as found)` +
        (ref === undefined ? '' : `; Mosquitto ${fmt(ref.rssPerConnection / KB, 2)} KB, ratio ${fmt(ours.rssPerConnectionAfterGc / ref.rssPerConnection, 1)}x`))
    }
    if (ours?.heapSnapshot != null) lines.push(`heap snapshots: npx tsx bench/heap-summary.ts ${relative(ROOT, ours.heapSnapshot)} --base ${relative(ROOT, ours.heapSnapshot.replace(/\.heapsnapshot$/, '-base.heapsnapshot'))} --per ${ours.accepted}`)
  }
  if (clusterResult !== undefined) {
    const c = clusterResult
    lines.push('', `Idle connections across ${args.nodes} nodes: ${fmtInt(c.accepted)}/${fmtInt(c.attempted)} accepted in ${fmt(c.connectSeconds, 1)} s, ${fmtInt(c.heldSockets)} sockets held, ${fmtInt(c.droppedAfterConnack)} dropped, presence online ${c.online === null ? '-' : fmtInt(c.online)}`, '',
      formatTable([['node', 'accepted', 'held', 'RSS idle', 'RSS loaded', 'RSS/conn'],
        ...c.nodes.map((n) => [n.name, fmtInt(n.accepted), fmtInt(n.heldSockets), fmtBytes(n.idleRssBytes), fmtBytes(n.loadedRssBytes), fmtBytes(perConnection(n.loadedRssBytes - n.idleRssBytes, n.accepted))])]),
      '', `goal: ${fmtInt(args.clusterConnections)} idle connections across ${args.nodes} nodes: ${c.accepted === args.clusterConnections && c.droppedAfterConnack === 0 ? 'met' : 'NOT met'}`)
  }
  lines.push('')
  process.stdout.write(lines.join('\n') + '\n')

  const machine = machineInfo()
  await writeReport(args.out, {
    benchmark: 'idle-connections',
    runId,
    startedAt,
    finishedAt: new Date().toISOString(),
    params: { ...args, out: undefined, main: args.main ?? 'bench-results/build/src/main.js' },
    machine,
    oneNode,
    cluster: clusterResult ?? null
  })
  log(`wrote ${args.out}`)

  if (args.summary !== undefined) {
    const figures: SummaryFigure[] = []
    const notes: string[] = []
    if (ours !== undefined) {
      figures.push(
        figure({ name: `idle authenticated connections held on one node (of ${fmtInt(args.connections)})`, unit: 'connections', ours: ours.accepted - ours.droppedAfterConnack, reference: ref === undefined ? null : ref.accepted - ref.droppedAfterConnack, target: `>= ${args.connections}` }),
        figure({ name: 'resident memory per idle connection, after a full GC', unit: 'KB', ours: kb(ours.rssPerConnectionAfterGc), reference: kb(ref?.rssPerConnection), target: `<= ${args.targetKb}` }),
        figure({ name: 'resident memory per idle connection, as found (no forced GC)', unit: 'KB', ours: kb(ours.rssPerConnection), reference: kb(ref?.rssPerConnection), target: `<= ${args.targetKb}` }),
        figure({ name: 'V8 heap used per idle connection, after a full GC', unit: 'KB', ours: kb(ours.heapUsedPerConnection) })
      )
    }
    if (clusterResult !== undefined) {
      const c = clusterResult
      figures.push(
        figure({ name: `idle connections held across ${args.nodes} nodes`, unit: 'connections', ours: c.accepted - c.droppedAfterConnack, target: `>= ${args.clusterConnections}` }),
        figure({ name: `resident memory per idle connection across ${args.nodes} nodes (as found)`, unit: 'KB', ours: kb(c.rssPerConnection), target: `<= ${args.targetKb}` })
      )
      notes.push(`cluster: presence online ${c.online ?? 'unknown'} of ${c.accepted} accepted; no reference for this part (Mosquitto is one process, and one process holds at most 20,000 open files here)`)
    }
    await writeSummary(args.summary, 'idle-connections', figures, notes)
    log(`wrote ${args.summary}`)
  }
}

await runBench(main, USAGE)
