// Benchmark (prints figures; not a test): one targeted push to a list of 100,000 device ids, some online over
// several Pushline nodes, the rest offline (cluster mode, Redis from scripts/services.sh).
//
//   flock /tmp/pushline-bench.lock npm run bench:batch -- --devices 100000 --online 20000 --nodes 4
//   npx tsx bench/push-batch.ts --help
//
// Devices are written straight into Redis with Pushline's device store, online ones also get a token
// (seedRedisTokens). Online device i connects to node i % nodes from load generator processes (own 127.0.0.x
// source addresses), subscribes devices/{id}/down at QoS 1, PUBACKs and acks each downlink with {"id": n}.
// One POST /v1/admin/push {deviceIds: all of them, shuffled} per round; measured: the time until 202 (accept),
// until the job is done (pushes per second = ids / that time), until every online device received its downlink,
// and until the receipts say delivered or acked for all of them. No reference broker: Mosquitto has no
// targeted-batch equivalent (a publisher would send 100,000 PUBLISHes itself).

import { randomUUID } from 'node:crypto'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { createAdminClient } from './lib/admin-api.ts'
import { startBroadcastLoad, type BroadcastClient } from './lib/broadcast-load.ts'
import { buildPushline, startPushline, type PushlineProcess } from './lib/brokers.ts'
import { MAX_CONNECTIONS_PER_WORKER } from './lib/connect-load.ts'
import { deleteRedisPrefix, deviceIds, mapConcurrent, seedRedisTokens } from './lib/devices.ts'
import { commonOptions, exitOnHelp, intOption, onCleanup, runBench, setDeadline, UsageError, writeReport } from './lib/lifecycle.ts'
import { rssBytes } from './lib/proc.ts'
import { ensureServices, redisServerInfo } from './lib/services.ts'
import { fmt, fmtBytes, fmtInt, machineInfo, median, percentile } from './lib/stats.ts'
import { figure, writeSummary } from './lib/summary.ts'
import { createRedisDeviceStore } from '../src/stores/redis-device-store.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))

const USAGE = `usage: npx tsx bench/push-batch.ts [options]

  --devices N         ids in the push (default 100000, at most 100000: the API's limit)
  --online N          of them online (default 20000)
  --nodes N           Pushline node processes (default 4)
  --workers N         load generator processes (default: enough for ${fmtInt(MAX_CONNECTIONS_PER_WORKER)} each, at least 2)
  --rounds N          pushes (default 3); the figures are medians
  --target-rate N     goal, pushes per second processed (default 10000)
  --main PATH         compiled platform entry (default: compile src/ into bench-results/build)
  --out PATH          JSON result (default bench-results/push-batch.json)
  --summary PATH      also write the common summary (bench/lib/summary.ts)
  --max-seconds N     abort the whole run after this long (default 900)
  --keep-logs         keep the brokers' temp dirs with their logs
  --help`

interface Args {
  readonly devices: number
  readonly online: number
  readonly nodes: number
  readonly workers: number | undefined
  readonly rounds: number
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
      devices: { type: 'string', default: '100000' },
      online: { type: 'string', default: '20000' },
      nodes: { type: 'string', default: '4' },
      workers: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      'target-rate': { type: 'string', default: '10000' },
      ...commonOptions(ROOT, 'push-batch', 900)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  const args: Args = {
    devices: intOption('devices', values.devices, 1, 100_000),
    online: intOption('online', values.online, 0, 100_000),
    nodes: intOption('nodes', values.nodes, 1, 16),
    workers: values.workers === undefined ? undefined : intOption('workers', values.workers, 1, 32),
    rounds: intOption('rounds', values.rounds, 1, 10),
    targetRate: intOption('target-rate', values['target-rate'], 1, 10_000_000),
    main: values.main,
    out: values.out,
    summary: values.summary,
    maxSeconds: intOption('max-seconds', values['max-seconds'], 10, 7200),
    keepLogs: values['keep-logs']
  }
  if (args.online > args.devices) throw new UsageError('--online must not exceed --devices')
  if (args.online / args.nodes > 19_000) throw new UsageError('more than 19,000 online devices per node (open-file limit): add nodes')
  return args
}

const log = (line: string): void => { process.stdout.write(`${line}\n`) }
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

interface Round {
  readonly pushId: string
  readonly acceptMs: number
  /** POST until the job reported done. */
  readonly jobMs: number
  readonly pushesPerSecond: number
  readonly onlineP50Ms: number
  readonly onlineP99Ms: number
  /** Until the last online device received it; null if not all did within the wait. */
  readonly onlineAllMs: number | null
  readonly received: number
  /** Until the receipts counted every online device delivered or acked; null if not within the wait. */
  readonly receiptsMs: number | null
  readonly counts: Record<string, number>
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const runId = randomUUID().slice(0, 8)
  const admin = createAdminClient(log)
  log(`run ${runId}: ${fmtInt(args.devices)} ids, ${fmtInt(args.online)} online over ${args.nodes} nodes, ${args.rounds} rounds`)

  const services = await ensureServices(ROOT)
  onCleanup('services', () => services.stop())
  const redisVersion = (await redisServerInfo(services.redisUrl)).version
  const main = args.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build'))
  const prefix = `bench-batch-${runId}:`
  onCleanup(`delete Redis keys ${prefix}*`, async () => { log(`deleted ${await deleteRedisPrefix(services.redisUrl, prefix)} Redis keys under ${prefix}`) })

  const ids = deviceIds(`pb-${runId}`, args.devices)
  const seedStart = Date.now()
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    const store = createRedisDeviceStore({ redis, prefix })
    await mapConcurrent(ids, 1000, (id) => store.create({ id, groups: [], metadata: {}, secretHash: 'unused', enabled: true, createdAt: 1, updatedAt: 1 }))
  } finally {
    redis.disconnect()
  }
  const creds = await seedRedisTokens({ redisUrl: services.redisUrl, prefix, deviceIds: ids.slice(0, args.online), concurrency: 1000 })
  log(`created ${fmtInt(ids.length)} devices and ${fmtInt(creds.length)} tokens in ${fmt((Date.now() - seedStart) / 1000, 1)} s`)

  const nodes = await Promise.all(Array.from({ length: args.nodes }, async (_, i) => {
    const node = await startPushline({ name: `node${i}`, main, redisUrl: services.redisUrl, redisPrefix: prefix, keepLogs: args.keepLogs, env: { PUSHLINE_NODE_ID: `pb-${runId}-${i}` } })
    onCleanup(`stop node${i}`, () => node.stop())
    return node
  }))
  const clients: BroadcastClient[] = creds.map((c, i) => ({
    clientId: c.deviceId, username: c.deviceId, password: c.token, port: (nodes[i % nodes.length] as PushlineProcess).mqttPort, topics: [`devices/${c.deviceId}/down`]
  }))
  const connectStart = Date.now()
  const load = args.online === 0
    ? undefined
    : await startBroadcastLoad({ host: '127.0.0.1', clients, workers: args.workers ?? Math.max(2, Math.ceil(args.online / MAX_CONNECTIONS_PER_WORKER)), ack: true, firstSourceOctet: 100, maxLifetimeMs: args.maxSeconds * 1000 })
  if (load !== undefined) {
    onCleanup('release connections', () => load.release())
    log(`${fmtInt(load.connected)}/${fmtInt(args.online)} online devices connected and subscribed in ${fmt((Date.now() - connectStart) / 1000, 1)} s` +
      (load.failed > 0 ? ` (${load.failed} failed: ${load.failureSamples.join('; ')})` : ''))
  }
  const online = load?.connected ?? 0
  // Presence must say where each device is before the push looks it up.
  const api = nodes[0] as PushlineProcess
  const presenceDeadline = Date.now() + 60_000
  while (Date.now() < presenceDeadline) {
    const stats = await admin.call(api.httpUrl, 'GET', '/v1/admin/stats').catch(() => ({})) as { online?: number }
    if (stats.online === undefined || stats.online >= online) break
    await sleep(500)
  }

  const rounds: Round[] = []
  for (let r = 1; r <= args.rounds; r++) {
    const shuffled = [...ids].sort(() => Math.random() - 0.5)
    const t0 = nowMs()
    const { pushId } = await admin.call(api.httpUrl, 'POST', '/v1/admin/push', { deviceIds: shuffled, data: { round: r }, qos: 1, ttlSeconds: 600 }) as { pushId: string }
    const acceptMs = nowMs() - t0
    const received = load === undefined ? undefined : load.waitFor(pushId, online, 120_000)
    let jobMs = Number.NaN
    let receiptsMs: number | null = null
    let counts: Record<string, number> = {}
    const deadline = Date.now() + 180_000
    while (Date.now() < deadline) {
      const view = await admin.call(api.httpUrl, 'GET', `/v1/admin/push/${pushId}?limit=1`) as { progress: { done: boolean }, counts: Record<string, number> }
      counts = view.counts
      if (view.progress.done && Number.isNaN(jobMs)) jobMs = nowMs() - t0
      if (view.progress.done && (counts.delivered ?? 0) + (counts.acked ?? 0) >= online) { receiptsMs = nowMs() - t0; break }
      await sleep(100)
    }
    const got = received === undefined ? undefined : await received
    const rel = got === undefined ? new Float64Array() : got.atMs.map((t) => t - t0)
    const round: Round = {
      pushId,
      acceptMs,
      jobMs,
      pushesPerSecond: args.devices / (jobMs / 1000),
      onlineP50Ms: percentile(rel, 0.5),
      onlineP99Ms: percentile(rel, 0.99),
      onlineAllMs: rel.length >= online ? (rel[rel.length - 1] ?? 0) : null,
      received: rel.length,
      receiptsMs,
      counts
    }
    rounds.push(round)
    log(`round ${r}: 202 in ${fmt(acceptMs, 0)} ms, job done in ${fmt(jobMs, 0)} ms (${fmtInt(round.pushesPerSecond)} pushes/s); online received p50 ${fmt(round.onlineP50Ms, 0)} ms p99 ${fmt(round.onlineP99Ms, 0)} ms ` +
      `all ${round.onlineAllMs === null ? `NOT (${fmtInt(round.received)}/${fmtInt(online)})` : `${fmt(round.onlineAllMs, 0)} ms`}; receipts delivered/acked for all online after ${receiptsMs === null ? 'NOT within the wait' : `${fmt(receiptsMs, 0)} ms`}  counts ${JSON.stringify(counts)}`)
  }
  const rss = nodes.map((n) => rssBytes(n.pid))
  log(`node RSS: ${rss.map(fmtBytes).join(', ')}`)
  for (const n of nodes) {
    const why = n.unexpectedExit()
    if (why !== undefined) throw new Error(why)
  }

  const med = (f: (r: Round) => number | null): number | null => {
    const v = rounds.map(f)
    return v.some((x) => x === null || Number.isNaN(x)) ? null : median(v as number[])
  }
  await writeReport(args.out, { runId, machine: machineInfo(), redisVersion, args, online, rounds, rssBytes: rss, unavailableRetries: admin.retries() })
  log(`wrote ${args.out}`)
  if (args.summary !== undefined) {
    await writeSummary(args.summary, 'push-batch', [
      figure({ name: `batch of ${fmtInt(args.devices)} ids: accepted (202)`, unit: 'ms', ours: med((r) => r.acceptMs) }),
      figure({ name: `batch of ${fmtInt(args.devices)} ids: processed`, unit: 'pushes/s', ours: med((r) => r.pushesPerSecond), target: `>= ${args.targetRate}` }),
      figure({ name: `batch: all ${fmtInt(online)} online devices received`, unit: 'ms', ours: med((r) => r.onlineAllMs) }),
      figure({ name: `batch: receipts delivered or acked for all ${fmtInt(online)} online devices`, unit: 'ms', ours: med((r) => r.receiptsMs) })
    ], [`${args.nodes} nodes, each also serving the API; the POST goes to node 0, which runs the job`, 'no reference broker: Mosquitto has no targeted-batch equivalent', `admin requests answered 503 and retried: ${admin.retries()}`])
    log(`wrote ${args.summary}`)
  }
}

await runBench(main, USAGE)
