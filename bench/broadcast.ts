// Benchmark (prints figures; not a test): broadcast and group push to many online devices spread over several
// Pushline node processes (cluster mode, Redis from scripts/services.sh), beside Mosquitto broadcasting one
// message to plain subscribers in the same run.
//
//   flock /tmp/pushline-bench.lock npm run bench:broadcast -- --devices 100000 --nodes 6 --rounds 3
//   npx tsx bench/broadcast.ts --help
//
// Devices are authenticated: a token per device is written straight into Redis (seedRedisTokens), even-numbered
// devices are in group "bench-a". Device i connects to node i % nodes from one of --workers load generator
// processes (each on its own 127.0.0.x source address), subscribes broadcast/all (and broadcast/groups/bench-a
// for group members) at QoS 1, PUBACKs every downlink and acks it with {"id": pushId} on devices/{id}/ack.
// Each round: POST /v1/admin/push {all: true}, then {group: "bench-a"}; the time from just before the POST
// until 50 %, 99 % and all devices received it, then the push's counts from GET /v1/admin/push/{id} (delivered +
// acked must equal the number of receivers). Mosquitto, the reference: one process holds at most its open-file
// limit of clients (checked in /proc/<pid>/limits), so the same number of subscribers is spread over as many
// independent Mosquitto processes as that takes, and each gets one QoS 1 publish to broadcast/all (MQTT.js) at
// the same moment; its subscribers PUBACK and ack like the devices do, and the timing is the same.
//
// With --receipts-stream the run compares Pushline with itself instead: the same devices, first with the receipts
// stream off, then on (PUSHLINE_RECEIPTS_STREAM), both with Kafka from scripts/services.sh, on fresh node processes
// each; it prints the ratio on/off of the medians of "all received" and the receipt records the nodes wrote.
// Mosquitto is not run then.

import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { startBroadcastLoad, type BroadcastClient, type BroadcastLoad, type Collected, type Misses } from './lib/broadcast-load.ts'
import { createAdminClient } from './lib/admin-api.ts'
import { buildPushline, cpuProfileArgs, mosquittoVersion, startMosquitto, startPushline, type BrokerProcess, type PushlineProcess } from './lib/brokers.ts'
import { MAX_CONNECTIONS_PER_WORKER } from './lib/connect-load.ts'
import { deleteRedisPrefix, deviceIds, seedRedisTokens, type DeviceCredential } from './lib/devices.ts'
import { commonOptions, exitOnHelp, intOption, onCleanup, runBench, setDeadline, UsageError, writeReport } from './lib/lifecycle.ts'
import { rssBytes } from './lib/proc.ts'
import { ensureServices } from './lib/services.ts'
import { fmt, fmtBytes, fmtInt, formatTable, machineInfo, median, percentile } from './lib/stats.ts'
import { figure, writeSummary, type SummaryFigure } from './lib/summary.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const GROUP = 'bench-a'

const USAGE = `usage: npx tsx bench/broadcast.ts [options]

  --devices N         online devices for the big run (default 100000)
  --nodes N           Pushline node processes (default 6); each must hold under 20,000 connections
  --workers N         load generator processes (default: enough for ${fmtInt(MAX_CONNECTIONS_PER_WORKER)} each, at least 2)
  --rounds N          broadcast + group push rounds per run (default 3)
  --mosquitto N       Mosquitto subscribers (default: --devices), over as many Mosquitto processes as their
                      open-file limit requires (each holds at most the limit minus 100)
  --equal N           Pushline devices of an extra run at another count (default: 0, none)
  --target-ms N       goal for "all received" (default 2000)
  --main PATH         compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH          JSON result (default bench-results/broadcast.json)
  --summary PATH      also write the common summary (bench/lib/summary.ts)
  --max-seconds N     abort the whole run after this long (default 1200)
  --keep-logs         keep the brokers' temp dirs with their logs (their paths are printed)
  --log-level L       the nodes' PUSHLINE_LOG_LEVEL (default warn)
  --profile           run node 0 with --cpu-prof; the profile goes to bench-results/profiles/
  --no-acks           receivers only PUBACK (delivery counts still known), no application ack on
                      devices/{id}/ack: a third less traffic back, on both brokers
  --receipts-stream   compare the receipts stream off and on (both with Kafka) instead of Mosquitto:
                      the ratio of the time until all received
  --modes off,on      with --receipts-stream: which halves to run, in this order (default off,on; the ratio
                      needs both)
  --help`

interface Args {
  readonly devices: number
  readonly nodes: number
  readonly workers: number | undefined
  readonly rounds: number
  readonly mosquitto: number | undefined
  readonly equal: number | undefined
  readonly targetMs: number
  readonly main: string | undefined
  readonly out: string
  readonly summary: string | undefined
  readonly maxSeconds: number
  readonly keepLogs: boolean
  readonly logLevel: string
  readonly profile: boolean
  readonly acks: boolean
  readonly receiptsStream: boolean
  readonly modes: ReadonlyArray<'off' | 'on'>
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '100000' },
      nodes: { type: 'string', default: '6' },
      workers: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      mosquitto: { type: 'string' },
      equal: { type: 'string' },
      'target-ms': { type: 'string', default: '2000' },
      profile: { type: 'boolean', default: false },
      'no-acks': { type: 'boolean', default: false },
      'receipts-stream': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'warn' },
      modes: { type: 'string', default: 'off,on' },
      ...commonOptions(ROOT, 'broadcast', 1200)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const args: Args = {
    devices: intOption('devices', values.devices, 1, 200_000),
    nodes: intOption('nodes', values.nodes, 1, 16),
    workers: values.workers === undefined ? undefined : intOption('workers', values.workers, 1, 32),
    rounds: intOption('rounds', values.rounds, 1, 10),
    mosquitto: values.mosquitto === undefined ? undefined : intOption('mosquitto', values.mosquitto, 0, 200_000),
    equal: values.equal === undefined ? undefined : intOption('equal', values.equal, 0, 200_000),
    targetMs: intOption('target-ms', values['target-ms'], 1, 600_000),
    main: values.main,
    out: values.out,
    summary: values.summary,
    maxSeconds: intOption('max-seconds', values['max-seconds'], 10, 7200),
    keepLogs: values['keep-logs'],
    logLevel: values['log-level'],
    profile: values.profile,
    acks: !values['no-acks'],
    receiptsStream: values['receipts-stream'],
    modes: values.modes.split(',').map((m) => {
      if (m !== 'off' && m !== 'on') throw new UsageError(`--modes takes off and/or on, comma-separated, not ${JSON.stringify(m)}`)
      return m
    })
  }
  if (args.devices / args.nodes > 19_000) throw new UsageError(`${args.devices} devices over ${args.nodes} nodes is more than 19,000 per node (open-file limit): add nodes`)
  return args
}

const log = (line: string): void => { process.stdout.write(`${line}\n`) }
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6
const workersFor = (count: number, given: number | undefined): number => given ?? Math.max(2, Math.ceil(count / MAX_CONNECTIONS_PER_WORKER))

interface Timing {
  readonly expected: number
  readonly received: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Until the last receiver; null when not every receiver got it within the wait. */
  readonly allMs: number | null
}

interface PushRound extends Timing {
  readonly kind: 'all' | 'group'
  readonly pushId: string
  readonly acceptMs: number
  readonly counts: Record<string, number>
  /** delivered + acked == expected, as read from GET /v1/admin/push/{id}. */
  readonly countsMatch: boolean
  /** Subscribed connections closed so far in this run (not by the benchmark), and why. */
  readonly dropped: number
  readonly dropReasons: Readonly<Record<string, number>>
  /** The expected receivers that did not get it: still connected (a loss) or with their connection closed. */
  readonly misses: Misses
}

/** "dropped so far N (why: n, ...)" and the receivers without the push, when there are any. */
function describeMisses (got: Pick<Collected, 'dropped' | 'dropReasons' | 'misses'>): string {
  const why = Object.entries(got.dropReasons).map(([k, n]) => `${k}: ${n}`).join(', ')
  const { connected, dropped, samples } = got.misses
  return `connections dropped so far ${fmtInt(got.dropped)}${why === '' ? '' : ` (${why})`}` +
    (connected + dropped === 0 ? '' : `; not received: ${fmtInt(connected)} connected, ${fmtInt(dropped)} dropped, e.g. ${samples.join('; ')}`)
}

function timing (t0: number, atMs: Float64Array, expected: number): Timing {
  const rel = atMs.map((t) => t - t0)
  return {
    expected,
    received: rel.length,
    p50Ms: percentile(rel, 0.5),
    p99Ms: percentile(rel, 0.99),
    allMs: rel.length >= expected ? (rel[rel.length - 1] as number) : null
  }
}

const admin = createAdminClient(log)
const api = async (node: PushlineProcess, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => await admin.call(node.httpUrl, method, path, body)

/** Waits until the push's delivered + acked counts reach `expected` (they are flushed every 500 ms per node). */
async function settledCounts (node: PushlineProcess, pushId: string, expected: number): Promise<{ counts: Record<string, number>, match: boolean }> {
  const deadline = Date.now() + 20_000
  let counts: Record<string, number> = {}
  while (Date.now() < deadline) {
    counts = (await api(node, 'GET', `/v1/admin/push/${pushId}?limit=1`)).counts as Record<string, number>
    if ((counts.delivered ?? 0) + (counts.acked ?? 0) === expected && (counts.sent ?? 0) === 0) return { counts, match: true }
    await sleep(250)
  }
  return { counts, match: false }
}

async function pushRound (nodes: readonly PushlineProcess[], load: BroadcastLoad, kind: 'all' | 'group', round: number, expected: number): Promise<PushRound> {
  const node = nodes[round % nodes.length] as PushlineProcess
  const body = kind === 'all' ? { all: true } : { group: GROUP }
  const t0 = nowMs()
  const { pushId } = await api(node, 'POST', '/v1/admin/push', { ...body, data: { round, kind }, qos: 1, ttlSeconds: 300 }) as { pushId: string }
  const acceptMs = nowMs() - t0
  const got = await load.waitFor(pushId, expected, 30_000, kind === 'all' ? 'broadcast/all' : `broadcast/groups/${GROUP}`)
  const t = timing(t0, got.atMs, expected)
  const { counts, match } = await settledCounts(node, pushId, expected)
  return { kind, pushId, acceptMs, ...t, counts, countsMatch: match, dropped: got.dropped, dropReasons: got.dropReasons, misses: got.misses }
}

interface PushlineRun {
  readonly devices: number
  readonly connected: number
  readonly connectSeconds: number
  readonly rounds: PushRound[]
  readonly rssBytes: number[]
}

async function runPushline (args: Args, nodes: readonly PushlineProcess[], creds: ReadonlyArray<{ deviceId: string, token: string }>, count: number, label: string): Promise<PushlineRun> {
  const clients: BroadcastClient[] = creds.slice(0, count).map((c, i) => ({
    clientId: c.deviceId,
    username: c.deviceId,
    password: c.token,
    port: (nodes[i % nodes.length] as PushlineProcess).mqttPort,
    topics: i % 2 === 0 ? ['broadcast/all', `broadcast/groups/${GROUP}`] : ['broadcast/all']
  }))
  const started = Date.now()
  const load = await startBroadcastLoad({ host: '127.0.0.1', clients, workers: workersFor(count, args.workers), ack: args.acks, firstSourceOctet: 20, maxLifetimeMs: args.maxSeconds * 1000 })
  const connectSeconds = (Date.now() - started) / 1000
  log(`${label}: ${fmtInt(load.connected)}/${fmtInt(count)} devices connected and subscribed in ${fmt(connectSeconds, 1)} s` +
    (load.failed > 0 ? ` (${load.failed} failed: ${load.failureSamples.join('; ')})` : ''))
  // Only connected clients can receive: a failed connect leaves a group member out.
  const members = load.subscribed[`broadcast/groups/${GROUP}`] ?? 0
  const rounds: PushRound[] = []
  try {
    await sleep(2000) // let presence writes and subscriptions settle
    for (let r = 1; r <= args.rounds; r++) {
      for (const kind of ['all', 'group'] as const) {
        const res = await pushRound(nodes, load, kind, r, kind === 'all' ? load.connected : members)
        rounds.push(res)
        log(`  round ${r} ${kind.padEnd(5)} accepted in ${fmt(res.acceptMs, 0)} ms; received p50 ${fmt(res.p50Ms, 0)} ms p99 ${fmt(res.p99Ms, 0)} ms all ${res.allMs === null ? `NOT (${fmtInt(res.received)}/${fmtInt(res.expected)})` : `${fmt(res.allMs, 0)} ms`}` +
          `  counts ${JSON.stringify(res.counts)}${res.countsMatch ? '' : ' MISMATCH'}\n  ${describeMisses(res)}`)
      }
    }
    const rss = nodes.map((n) => rssBytes(n.pid))
    log(`  node RSS: ${rss.map(fmtBytes).join(', ')}`)
    return { devices: count, connected: load.connected, connectSeconds, rounds, rssBytes: rss }
  } finally {
    await load.release()
    await sleep(3000) // let the nodes see the disconnects before the next run
  }
}

function fdLimit (pid: number): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
  return m === null ? 1024 : Number(m[1])
}

interface MosquittoRun {
  readonly clients: number
  readonly processes: number
  readonly fdLimit: number
  readonly rounds: Timing[]
  /** Of the largest process. */
  readonly rssBytes: number
  readonly version: string
}

async function runMosquitto (args: Args, runId: string): Promise<MosquittoRun> {
  const start = async (): Promise<BrokerProcess> => {
    const broker = await startMosquitto({ keepLogs: args.keepLogs })
    onCleanup(`stop mosquitto ${broker.pid}`, () => broker.stop())
    return broker
  }
  const first = await start()
  const limit = fdLimit(first.pid)
  const count = args.mosquitto ?? args.devices
  const processes = Math.max(1, Math.ceil(count / (limit - 100)))
  const brokers = [first, ...await Promise.all(Array.from({ length: processes - 1 }, start))]
  const clients: BroadcastClient[] = deviceIds(`mq-${runId}`, count).map((clientId, i) => ({ clientId, port: (brokers[i % processes] as BrokerProcess).mqttPort, topics: ['broadcast/all'] }))
  const load = await startBroadcastLoad({ host: '127.0.0.1', clients, workers: workersFor(count, args.workers), ack: args.acks, firstSourceOctet: 60, maxLifetimeMs: args.maxSeconds * 1000 })
  log(`mosquitto (${processes} processes, fd limit ${limit}): ${fmtInt(load.connected)}/${fmtInt(count)} subscribers` + (load.failed > 0 ? ` (${load.failed} failed: ${load.failureSamples.join('; ')})` : ''))
  const pubs = await Promise.all(brokers.map(async (b, k) => await mqtt.connectAsync({ host: '127.0.0.1', port: b.mqttPort, clientId: `mq-${runId}-pub${k}`, reconnectPeriod: 0 })))
  const rounds: Timing[] = []
  try {
    await sleep(1000)
    for (let r = 1; r <= args.rounds; r++) {
      const tag = `mq-${runId}-${r}`
      const payload = JSON.stringify({ id: tag, pushId: tag, sentAt: Date.now(), data: { round: r } })
      const t0 = nowMs()
      await Promise.all(pubs.map(async (pub) => await pub.publishAsync('broadcast/all', payload, { qos: 1 })))
      const got = await load.waitFor(tag, load.connected, 30_000, 'broadcast/all')
      const t = timing(t0, got.atMs, load.connected)
      rounds.push(t)
      log(`  round ${r} received p50 ${fmt(t.p50Ms, 0)} ms p99 ${fmt(t.p99Ms, 0)} ms all ${t.allMs === null ? `NOT (${fmtInt(t.received)}/${fmtInt(t.expected)})` : `${fmt(t.allMs, 0)} ms`}\n  ${describeMisses(got)}`)
    }
    const rss = Math.max(...brokers.map((b) => rssBytes(b.pid)))
    return { clients: load.connected, processes, fdLimit: limit, rounds, rssBytes: rss, version: await mosquittoVersion() }
  } finally {
    await Promise.all(pubs.map(async (pub) => await pub.endAsync()))
    await load.release()
    await Promise.all(brokers.map(async (b) => await b.stop()))
  }
}

const med = (rounds: readonly Timing[], f: (t: Timing) => number | null): number | null => {
  const v = rounds.map(f)
  return v.some((x) => x === null) || v.length === 0 ? null : median(v as number[])
}

/** The Pushline node processes of one run, stopped at cleanup (or earlier by the caller). */
async function startNodes (args: Args, main: string, redisUrl: string, prefix: string, runId: string, env: Record<string, string> = {}): Promise<PushlineProcess[]> {
  return await Promise.all(Array.from({ length: args.nodes }, async (_, i) => {
    const nodeArgs = args.profile && i === 0 ? cpuProfileArgs(ROOT, `broadcast-node0-${runId}`) : []
    const node = await startPushline({ name: `node${i}`, main, redisUrl, redisPrefix: prefix, keepLogs: args.keepLogs, nodeArgs, env: { PUSHLINE_NODE_ID: `bc-${runId}-${i}`, PUSHLINE_LOG_LEVEL: args.logLevel, ...env } })
    if (args.keepLogs) log(`node${i} (pid ${node.pid}, port ${node.mqttPort}): log ${node.logFile}`)
    onCleanup(`stop node${i}`, () => node.stop())
    return node
  }))
}

/** A token per device in Redis; even-numbered devices are in the group. */
async function seedDevices (redisUrl: string, prefix: string, ids: readonly string[]): Promise<DeviceCredential[]> {
  const seedStart = Date.now()
  const creds = await seedRedisTokens({ redisUrl, prefix, deviceIds: ids, groups: [], concurrency: 1000 })
  // Group membership rides in the token: re-seed the even-numbered devices with the group.
  const members = await seedRedisTokens({ redisUrl, prefix, deviceIds: ids.filter((_, i) => i % 2 === 0), groups: [GROUP], concurrency: 1000 })
  members.forEach((m, j) => { creds[j * 2] = m })
  log(`seeded ${fmtInt(ids.length)} device tokens in ${fmt((Date.now() - seedStart) / 1000, 1)} s`)
  return creds
}

function assertNodesRan (nodes: readonly PushlineProcess[]): void {
  for (const n of nodes) {
    const why = n.unexpectedExit()
    if (why !== undefined) throw new Error(why)
  }
}

/** A node's counter or gauge, summed over its label sets, from its /metrics. */
async function nodeMetric (node: PushlineProcess, name: string): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text()
  return text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`)).reduce((n, l) => n + Number(l.split(' ').pop()), 0)
}

/**
 * The same devices and rounds twice, on fresh nodes each time, both with Kafka: receipts stream off, then on.
 * Prints the ratio on/off of the medians of the time until all received.
 */
async function compareReceiptsStream (args: Args, runId: string): Promise<void> {
  const services = await ensureServices(ROOT)
  onCleanup('services', () => services.stop())
  if (services.kafkaBrokers === undefined) throw new Error('--receipts-stream needs the Kafka of scripts/services.sh (.services/env has no PUSHLINE_TEST_KAFKA_BROKERS)')
  const main = args.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  const prefix = `bench-bc-${runId}:`
  onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(services.redisUrl, prefix)} Redis keys under ${prefix}`) })
  const creds = await seedDevices(services.redisUrl, prefix, deviceIds(`bc-${runId}`, args.devices))
  const kafkaEnv = {
    PUSHLINE_KAFKA_BROKERS: services.kafkaBrokers,
    PUSHLINE_KAFKA_TELEMETRY_TOPIC: `bench.telemetry.${runId}`,
    PUSHLINE_KAFKA_PRESENCE_TOPIC: `bench.presence.${runId}`,
    PUSHLINE_KAFKA_RECEIPTS_TOPIC: `bench.receipts.${runId}`
  }
  const runs: Record<'off' | 'on', PushlineRun | undefined> = { off: undefined, on: undefined }
  let records = 0
  let unshipped = 0
  for (const mode of args.modes) {
    const nodes = await startNodes(args, main, services.redisUrl, prefix, `${runId}-${mode}`, { ...kafkaEnv, PUSHLINE_RECEIPTS_STREAM: String(mode === 'on') })
    runs[mode] = await runPushline(args, nodes, creds, args.devices, `pushline, ${fmtInt(args.devices)} devices, receipts stream ${mode}`)
    assertNodesRan(nodes)
    if (mode === 'on') {
      for (const n of nodes) {
        records += await nodeMetric(n, 'pushline_receipt_records_total')
        unshipped += await nodeMetric(n, 'pushline_receipt_records_unshipped')
      }
    }
    await Promise.all(nodes.map(async (n) => await n.stop()))
  }
  const off = runs.off
  const on = runs.on
  if (off === undefined || on === undefined) {
    await writeReport(args.out, { runId, machine: machineInfo(), args, unavailableRetries: admin.retries(), receiptsStreamOff: off, receiptsStreamOn: on, receiptRecords: records, receiptRecordsUnshipped: unshipped })
    log(`\nonly --modes ${args.modes.join(',')}: no ratio; wrote ${args.out}`)
    return
  }
  const rows: string[][] = [['push', 'receivers', 'all ms, stream off', 'all ms, stream on', 'on / off', 'counts match']]
  for (const kind of ['all', 'group'] as const) {
    const a = off.rounds.filter((r) => r.kind === kind)
    const b = on.rounds.filter((r) => r.kind === kind)
    const allOff = med(a, (t) => t.allMs)
    const allOn = med(b, (t) => t.allMs)
    rows.push([kind === 'all' ? 'broadcast' : 'group', fmtInt(b[0]?.expected ?? 0), allOff === null ? 'not all' : fmt(allOff, 0), allOn === null ? 'not all' : fmt(allOn, 0),
      allOff === null || allOn === null ? '' : `${fmt(allOn / allOff, 2)}x`, String([...a, ...b].every((r) => r.countsMatch))])
  }
  log('\nmedians over rounds (time from just before the POST until every receiver had it):')
  log(formatTable(rows))
  log(`receipt records written by the nodes with the stream on: ${fmtInt(records)} (${fmtInt(unshipped)} not yet in Kafka when the run ended)`)
  await writeReport(args.out, { runId, machine: machineInfo(), args, unavailableRetries: admin.retries(), receiptsStreamOff: off, receiptsStreamOn: on, receiptRecords: records, receiptRecordsUnshipped: unshipped })
  log(`\nwrote ${args.out}`)
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const runId = randomUUID().slice(0, 8)
  log(`run ${runId}: ${fmtInt(args.devices)} devices over ${args.nodes} nodes, ${args.rounds} rounds`)
  if (args.receiptsStream) return await compareReceiptsStream(args, runId)

  const mosq = await runMosquitto(args, runId)
  const equal = args.equal ?? 0

  const services = await ensureServices(ROOT)
  onCleanup('services', () => services.stop())
  const main = args.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  const prefix = `bench-bc-${runId}:`
  onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(services.redisUrl, prefix)} Redis keys under ${prefix}`) })
  const nodes = await startNodes(args, main, services.redisUrl, prefix, runId)
  const creds = await seedDevices(services.redisUrl, prefix, deviceIds(`bc-${runId}`, Math.max(args.devices, equal)))

  const equalRun = equal > 0 ? await runPushline(args, nodes, creds, equal, `pushline, ${fmtInt(equal)} devices (equal count)`) : undefined
  const bigRun = await runPushline(args, nodes, creds, args.devices, `pushline, ${fmtInt(args.devices)} devices`)
  assertNodesRan(nodes)

  const allOf = (run: PushlineRun | undefined, kind: 'all' | 'group'): PushRound[] => run?.rounds.filter((r) => r.kind === kind) ?? []
  const mosqAll = med(mosq.rounds, (t) => t.allMs)
  const mosqP50 = med(mosq.rounds, (t) => t.p50Ms)
  const mosqP99 = med(mosq.rounds, (t) => t.p99Ms)
  const rows: string[][] = [['run', 'receivers', 'p50 ms', 'p99 ms', 'all ms', 'vs mosquitto (all)', 'counts match']]
  const row = (name: string, rounds: readonly PushRound[] | readonly Timing[], ref: number | null): void => {
    const all = med(rounds, (t) => t.allMs)
    rows.push([name, fmtInt(rounds[0]?.expected ?? 0), fmt(med(rounds, (t) => t.p50Ms) ?? NaN, 0), fmt(med(rounds, (t) => t.p99Ms) ?? NaN, 0), all === null ? 'not all' : fmt(all, 0),
      all === null || ref === null ? '' : `${fmt(all / ref, 2)}x`, 'countsMatch' in (rounds[0] ?? {}) ? String((rounds as readonly PushRound[]).every((r) => r.countsMatch)) : ''])
  }
  row(`mosquitto ${mosq.version} x ${mosq.processes}`, mosq.rounds, mosqAll)
  if (equalRun !== undefined) { row('pushline broadcast (equal)', allOf(equalRun, 'all'), mosqAll); row('pushline group (equal)', allOf(equalRun, 'group'), null) }
  row('pushline broadcast', allOf(bigRun, 'all'), mosqAll)
  row('pushline group', allOf(bigRun, 'group'), null)
  log('\nmedians over rounds (time from just before the POST / publish):')
  log(formatTable(rows))

  const bigAll = med(allOf(bigRun, 'all'), (t) => t.allMs)
  await writeReport(args.out, { runId, machine: machineInfo(), args, unavailableRetries: admin.retries(), mosquitto: mosq, pushlineEqual: equalRun, pushline: bigRun })
  log(`\nwrote ${args.out}`)
  if (args.summary !== undefined) {
    const eqAll = med(allOf(equalRun, 'all'), (t) => t.allMs)
    const figures: SummaryFigure[] = [
      figure({ name: `broadcast to ${fmtInt(bigRun.connected)} devices over ${args.nodes} nodes: all received (Mosquitto: ${fmtInt(mosq.clients)} clients over ${mosq.processes} processes)`, unit: 'ms', ours: bigAll, reference: mosqAll, target: `<= ${args.targetMs}` }),
      figure({ name: `broadcast to ${fmtInt(bigRun.connected)} devices: p50 received`, unit: 'ms', ours: med(allOf(bigRun, 'all'), (t) => t.p50Ms), reference: mosqP50 }),
      figure({ name: `broadcast to ${fmtInt(bigRun.connected)} devices: p99 received`, unit: 'ms', ours: med(allOf(bigRun, 'all'), (t) => t.p99Ms), reference: mosqP99 }),
      figure({ name: `group push to ${fmtInt(allOf(bigRun, 'group')[0]?.expected ?? 0)} devices: all received`, unit: 'ms', ours: med(allOf(bigRun, 'group'), (t) => t.allMs) }),
      ...(equalRun === undefined ? [] : [figure({ name: `broadcast at an equal count, ${fmtInt(equalRun.connected)} devices: all received`, unit: 'ms', ours: eqAll, reference: mosqAll })]),
      figure({ name: 'largest node RSS in the big run', unit: 'MB', ours: Math.round(Math.max(...bigRun.rssBytes) / 1e6), reference: Math.round(mosq.rssBytes / 1e6) })
    ]
    const notes = [
      `Mosquitto: ${mosq.clients} subscribers over ${mosq.processes} independent processes (open-file limit ${mosq.fdLimit} each), one publish to each.`,
      `receivers ${args.acks ? 'PUBACK and ack every downlink on devices/{id}/ack' : 'only PUBACK (--no-acks)'}, on both brokers`,
      `delivery counts matched the receivers in every round: ${[...bigRun.rounds, ...(equalRun?.rounds ?? [])].every((r) => r.countsMatch)}`,
      `admin requests answered 503 and retried: ${admin.retries()}`
    ]
    await writeSummary(args.summary, 'broadcast', figures, notes)
    log(`wrote ${args.summary}`)
  }
}

await runBench(main, USAGE)
