// Benchmark (prints figures; not a test): uplink throughput of one Pushline node, QoS 1 from MQTT devices over
// TCP, in three set-ups measured in the same run:
//
//   kafka        end to end into Kafka: from the first PUBLISH until the last record is in the topic
//                (the topic's high watermarks, polled every 20 ms, reach the number of uplinks); one set-up per
//                --compression value, labelled kafka/<compression>
//   kafka-down   Kafka configured but unreachable (a closed port): uplinks go to the spool only, the shipper
//                keeps failing in the background; first PUBLISH to last PUBACK
//   spool-only   no Kafka at all (embedded mode): plain MQTT QoS 1 publishing into the spool, the comparison
//                (Mosquitto has no Kafka bridge, so it is no reference here)
//
//   npx tsx bench/uplink-throughput.ts
//   npx tsx bench/uplink-throughput.ts --devices 100 --messages 500 --payload 512 --rounds 3
//   npx tsx bench/uplink-throughput.ts --setups kafka,spool-only --compression none,gzip,gzip-6,snappy
//   npx tsx bench/uplink-throughput.ts --help
//
// Rounds alternate between the set-ups (A B C A B C ...) on a fresh node and a fresh topic each; the figure is
// the median. Kafka comes from scripts/services.sh (started, and stopped at the end, only if it was not running).
// Results: a table on stdout and bench-results/uplink-throughput.json.

import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Kafka, logLevel, type Admin } from 'kafkajs'
import { buildPushline, cpuProfileArgs, startPushline, type PushlineProcess } from './lib/brokers.ts'
import { deviceIds, provisionOverHttp } from './lib/devices.ts'
import { onCleanup, runBench, setDeadline, writeReport, intOption } from './lib/lifecycle.ts'
import { cpuSeconds, freePort, peakRssBytes } from './lib/proc.ts'
import { ensureServices } from './lib/services.ts'
import { fmt, fmtInt, formatTable, machineInfo, median } from './lib/stats.ts'
import { figure, writeSummary } from './lib/summary.ts'
import { preparePublishLoad, type PublishLoadResult } from './uplink/publisher.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const SETUPS = ['kafka', 'kafka-down', 'spool-only'] as const
type Setup = typeof SETUPS[number]
/** PUSHLINE_KAFKA_COMPRESSION, with `gzip-N` for gzip at zlib level N. */
const COMPRESSION = /^(none|snappy|gzip)(?:-([1-9]))?$/

/** One set-up as run: the kafka set-up once per compression. */
interface Variant {
  readonly label: string
  readonly setup: Setup
  readonly compression: string
}

const USAGE = `usage: npx tsx bench/uplink-throughput.ts [options]

  --devices N        MQTT devices publishing at once (default 50)
  --messages N       QoS 1 uplinks per device per round (default 2000)
  --payload N        payload bytes per uplink (default 256, at least 8)
  --window N         unacknowledged publishes per device (default 50)
  --rounds N         rounds per set-up (default 3); the figure is the median
  --warmup N         uplinks per device of an unrecorded first round per set-up (default 400; 0: none),
                     so that JIT compilation in the node and in Kafka does not land in round 1
  --setups LIST      comma-separated, of ${SETUPS.join(', ')} (default: all)
  --fsync POLICY     PUSHLINE_SPOOL_FSYNC of the node: always, interval or never (default always)
  --compression LIST comma-separated PUSHLINE_KAFKA_COMPRESSION values for the kafka set-up, each a set-up of its
                     own: none, snappy, gzip (at the node's default level) or gzip-N (zlib level N) (default gzip)
  --partitions N     partitions of the telemetry topic (default 12)
  --main PATH        compiled platform entry to run (default: compile src/ into bench-results/build-uplink)
  --profile          run the node with --cpu-prof; profiles go to bench-results/profiles/
  --node-args=LIST   space-separated options for the node's node process, given with "=" as they start with a
                     dash (e.g. --node-args=--max-semi-space-size=32), before the ones of --profile; the load
                     generator keeps its own
  --out PATH         JSON result (default bench-results/uplink-throughput.json)
  --summary PATH     also write the key figures in the suite's common shape (bench/lib/summary.ts)
  --target-rate N    the goal for the kafka set-up, uplinks/s per node (default 20000)
  --max-seconds N    abort the whole run after this long (default 900)
  --help`

interface Args {
  readonly devices: number
  readonly messages: number
  readonly payload: number
  readonly window: number
  readonly rounds: number
  readonly warmup: number
  readonly setups: readonly Setup[]
  readonly fsync: string
  readonly compressions: readonly string[]
  readonly partitions: number
  readonly main: string | undefined
  readonly profile: boolean
  readonly nodeArgs: readonly string[]
  readonly out: string
  readonly summary: string | undefined
  readonly targetRate: number
  readonly maxSeconds: number
}

function parse (): Args {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '50' },
      messages: { type: 'string', default: '2000' },
      payload: { type: 'string', default: '256' },
      window: { type: 'string', default: '50' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '400' },
      setups: { type: 'string', default: SETUPS.join(',') },
      fsync: { type: 'string', default: 'always' },
      compression: { type: 'string', default: 'gzip' },
      partitions: { type: 'string', default: '12' },
      main: { type: 'string' },
      profile: { type: 'boolean', default: false },
      'node-args': { type: 'string', default: '' },
      out: { type: 'string', default: join(ROOT, 'bench-results/uplink-throughput.json') },
      summary: { type: 'string' },
      'target-rate': { type: 'string', default: '20000' },
      'max-seconds': { type: 'string', default: '900' },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help === true) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  const int = intOption
  const setups = values.setups.split(',').map((s) => s.trim()) as Setup[]
  for (const s of setups) if (!SETUPS.includes(s)) throw new Error(`--setups: unknown set-up ${s}`)
  if (!['always', 'interval', 'never'].includes(values.fsync)) throw new Error('--fsync must be always, interval or never')
  const compressions = values.compression.split(',').map((c) => c.trim())
  for (const c of compressions) if (!COMPRESSION.test(c)) throw new Error(`--compression: ${c} is none of none, snappy, gzip, gzip-N`)
  return {
    devices: int('devices', values.devices, 1, 5000),
    messages: int('messages', values.messages, 1, 1_000_000),
    payload: int('payload', values.payload, 8, 200_000),
    window: int('window', values.window, 1, 10_000),
    rounds: int('rounds', values.rounds, 1, 50),
    warmup: int('warmup', values.warmup, 0, 1_000_000),
    setups,
    fsync: values.fsync,
    compressions,
    partitions: int('partitions', values.partitions, 1, 1000),
    main: values.main,
    profile: values.profile === true,
    nodeArgs: values['node-args'].split(' ').filter((a) => a !== ''),
    out: resolve(values.out),
    summary: values.summary === undefined ? undefined : resolve(values.summary),
    targetRate: int('target-rate', values['target-rate'], 1, 10_000_000),
    maxSeconds: int('max-seconds', values['max-seconds'], 10, 86_400)
  }
}

interface RoundResult {
  readonly setup: string
  readonly round: number
  readonly uplinks: number
  /** Uplinks published: devices x messages. */
  readonly sent: number
  readonly payloadBytes: number
  /** First PUBLISH to last PUBACK. */
  readonly ackSeconds: number
  /** First PUBLISH to the last record in Kafka (kafka set-up only). */
  readonly endToEndSeconds: number | undefined
  readonly messagesPerSecond: number
  readonly megabytesPerSecond: number
  readonly ackLatencyMs: PublishLoadResult['ackLatencyMs']
  /** CPU seconds during the timed part: the node, the Kafka broker (kafka set-up), this load generator. */
  readonly nodeCpuSeconds: number
  readonly kafkaCpuSeconds: number | undefined
  readonly loadCpuSeconds: number
  /** Records in the topic at the end: more than `uplinks` means replays. */
  readonly recordsInKafka: number | undefined
  /** The node's peak resident set size over its life (start, provisioning and the round), in bytes. */
  readonly nodePeakRssBytes: number
  /** Bytes of the topic's log segments at the end: what Kafka stores and received (batches as sent, compressed). */
  readonly kafkaLogBytes: number | undefined
}

/** Bytes of a topic's log files in the Kafka of scripts/services.sh. */
async function kafkaLogBytes (topic: string): Promise<number | undefined> {
  const data = join(ROOT, '.services/kafka/data')
  try {
    let bytes = 0
    for (const dir of (await readdir(data)).filter((d) => d.startsWith(`${topic}-`) && /-\d+$/.test(d))) {
      for (const f of (await readdir(join(data, dir))).filter((n) => n.endsWith('.log'))) bytes += (await stat(join(data, dir, f))).size
    }
    return bytes
  } catch {
    return undefined
  }
}

/**
 * Sum of the topic's high watermarks: records in it. kafkajs's fetchTopicOffsets gives up at once on a retriable
 * error such as "not the leader" and keeps its cached metadata, so on such an error the admin reconnects (which drops
 * that cache) and the read is tried again, up to a bound.
 */
async function topicRecords (admin: Admin, topic: string): Promise<number> {
  const until = Date.now() + 60_000
  for (;;) {
    try {
      return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0)
    } catch (err) {
      if ((err as { retriable?: unknown }).retriable !== true || Date.now() > until) throw err
      await admin.disconnect()
      await new Promise((resolve) => setTimeout(resolve, 200))
      await admin.connect()
    }
  }
}

async function recordsIn (kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await topicRecords(admin, topic)
  } finally {
    await admin.disconnect()
  }
}

/** The Kafka broker's process id, when scripts/services.sh runs it. */
function kafkaPid (): number | undefined {
  try {
    const pid = Number(readFileSync(join(ROOT, '.services/kafka/kafka.pid'), 'utf8').trim())
    cpuSeconds(pid)
    return pid
  } catch {
    return undefined
  }
}

const ownCpuSeconds = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

async function round (args: Args, main: string, variant: Variant, n: number, messages: number, kafkaBrokers: string | undefined, kafka: Kafka | undefined): Promise<RoundResult> {
  const { setup } = variant
  const [, codec, level] = COMPRESSION.exec(variant.compression) as RegExpExecArray
  const topic = `bench.uplink.${randomUUID().slice(0, 8)}`
  const deadPort = await freePort()
  const env: Record<string, string> = {
    PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000',
    PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE: '1000',
    PUSHLINE_SPOOL_FSYNC: args.fsync,
    PUSHLINE_UPLINK_RATE_PER_SECOND: '0',
    ...(setup === 'kafka' && {
      PUSHLINE_KAFKA_BROKERS: kafkaBrokers as string,
      PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic,
      PUSHLINE_KAFKA_PRESENCE_TOPIC: `${topic}.presence`,
      PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: String(args.partitions),
      PUSHLINE_KAFKA_COMPRESSION: codec as string,
      ...(level !== undefined && { PUSHLINE_KAFKA_GZIP_LEVEL: level })
    }),
    // Nothing listens there: the node spools and its shipper fails, as with Kafka down.
    ...(setup === 'kafka-down' && { PUSHLINE_KAFKA_BROKERS: `127.0.0.1:${deadPort}`, PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic })
  }
  const profileDir = join(ROOT, 'bench-results/profiles')
  if (args.profile) await mkdir(profileDir, { recursive: true })
  const node: PushlineProcess = await startPushline({
    name: `uplink-${setup}`,
    main,
    env,
    nodeArgs: [...args.nodeArgs, ...(args.profile ? cpuProfileArgs(ROOT, `uplink-${variant.label.replace('/', '-')}-${n}-${Date.now()}`) : [])]
  })
  onCleanup(`stop ${setup} node`, () => node.stop())
  try {
    const devices = (await provisionOverHttp({ httpUrl: node.httpUrl, adminKey: node.adminKey, deviceIds: deviceIds(`up-${n}`, args.devices), concurrency: 8 }))
      .map((d) => ({ deviceId: d.deviceId, token: d.token }))
    if (setup === 'kafka') {
      // The node creates its topics when it reaches Kafka: wait for that before the clock starts.
      const admin = (kafka as Kafka).admin()
      await admin.connect()
      const until = Date.now() + 30_000
      while (!(await admin.listTopics()).includes(topic)) {
        if (Date.now() > until) throw new Error(`the node did not create ${topic}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await admin.disconnect()
    }
    const load = await preparePublishLoad({ mqttUrl: `mqtt://${node.host}:${node.mqttPort}`, devices, messagesPerDevice: messages, payloadBytes: args.payload, window: args.window, qos: 1 })
    const total = args.devices * messages
    const kPid = setup === 'kafka' ? kafkaPid() : undefined
    const cpuBefore = cpuSeconds(node.pid)
    const kafkaCpuBefore = kPid === undefined ? 0 : cpuSeconds(kPid)
    const loadCpuBefore = ownCpuSeconds()
    let endToEndAt: number | undefined
    let watching: Promise<void> | undefined
    if (setup === 'kafka') {
      const admin = (kafka as Kafka).admin()
      await admin.connect()
      watching = (async () => {
        try {
          const until = Date.now() + 300_000
          for (;;) {
            const inTopic = await topicRecords(admin, topic)
            if (inTopic >= total) {
              endToEndAt = Date.now()
              return
            }
            if (Date.now() > until) throw new Error(`only ${inTopic} of ${total} records reached Kafka within 300 s`)
            await new Promise((resolve) => setTimeout(resolve, 20))
          }
        } finally {
          await admin.disconnect()
        }
      })()
    }
    const result = await load.run()
    await watching
    const cpu = cpuSeconds(node.pid) - cpuBefore
    const nodePeakRss = peakRssBytes(node.pid)
    const kafkaCpu = kPid === undefined ? undefined : cpuSeconds(kPid) - kafkaCpuBefore
    const loadCpu = ownCpuSeconds() - loadCpuBefore
    await load.close()
    const ackSeconds = (result.lastAckAt - result.firstPublishAt) / 1000
    const endToEndSeconds = endToEndAt === undefined ? undefined : (endToEndAt - result.firstPublishAt) / 1000
    const seconds = endToEndSeconds ?? ackSeconds
    return {
      setup: variant.label,
      round: n,
      uplinks: result.acked,
      sent: total,
      payloadBytes: result.payloadBytes,
      ackSeconds,
      endToEndSeconds,
      messagesPerSecond: result.acked / seconds,
      megabytesPerSecond: result.payloadBytes / seconds / 1e6,
      ackLatencyMs: result.ackLatencyMs,
      nodeCpuSeconds: cpu,
      kafkaCpuSeconds: kafkaCpu,
      loadCpuSeconds: loadCpu,
      nodePeakRssBytes: nodePeakRss,
      recordsInKafka: setup === 'kafka' ? await recordsIn(kafka as Kafka, topic) : undefined,
      kafkaLogBytes: setup === 'kafka' ? await kafkaLogBytes(topic) : undefined
    }
  } finally {
    await node.stop()
  }
}

async function main (): Promise<void> {
  const args = parse()
  setDeadline(args.maxSeconds * 1000)
  const needsKafka = args.setups.includes('kafka')
  let kafkaBrokers: string | undefined
  let kafka: Kafka | undefined
  if (needsKafka) {
    const services = await ensureServices(ROOT)
    onCleanup('services', () => services.stop())
    kafkaBrokers = services.kafkaBrokers
    if (kafkaBrokers === undefined) throw new Error('.services/env names no Kafka (PUSHLINE_TEST_KAFKA_BROKERS)')
    kafka = new Kafka({ clientId: 'bench-uplink', brokers: kafkaBrokers.split(','), logLevel: logLevel.NOTHING })
  }
  const mainJs = args.main ?? await buildPushline(ROOT, join(ROOT, 'bench-results/build-uplink'))
  const variants: Variant[] = args.setups.flatMap((setup): Variant[] => setup === 'kafka'
    ? args.compressions.map((compression) => ({ label: `kafka/${compression}`, setup, compression }))
    : [{ label: setup, setup, compression: 'none' }])

  if (args.warmup > 0) {
    for (const variant of variants) {
      const res = await round(args, mainJs, variant, 0, args.warmup, kafkaBrokers, kafka)
      process.stderr.write(`warm-up ${variant.label}: ${fmtInt(res.messagesPerSecond)} uplinks/s (not recorded)\n`)
    }
  }
  const results: RoundResult[] = []
  for (let r = 1; r <= args.rounds; r++) {
    for (const variant of variants) {
      const res = await round(args, mainJs, variant, r, args.messages, kafkaBrokers, kafka)
      results.push(res)
      process.stderr.write(`round ${r} ${variant.label}: ${fmtInt(res.messagesPerSecond)} uplinks/s, ${fmt(res.megabytesPerSecond, 2)} MB/s, node ${fmt(res.nodeCpuSeconds / res.uplinks * 1000 * 1000, 1)} ms CPU per 1,000\n`)
    }
  }

  const spoolOnlyRate = median(results.filter((r) => r.setup === 'spool-only').map((r) => r.messagesPerSecond))
  const summary = variants.map(({ label, setup }) => {
    const rs = results.filter((r) => r.setup === label)
    const seconds = (r: RoundResult): number => r.endToEndSeconds ?? r.ackSeconds
    return {
      setup: label,
      base: setup,
      messagesPerSecond: median(rs.map((r) => r.messagesPerSecond)),
      megabytesPerSecond: median(rs.map((r) => r.megabytesPerSecond)),
      ackP50Ms: median(rs.map((r) => r.ackLatencyMs.p50)),
      ackP99Ms: median(rs.map((r) => r.ackLatencyMs.p99)),
      nodeCpuPerThousand: median(rs.map((r) => r.nodeCpuSeconds / r.uplinks * 1000)),
      nodeCores: median(rs.map((r) => r.nodeCpuSeconds / (r.endToEndSeconds ?? r.ackSeconds))),
      kafkaCores: setup === 'kafka' ? median(rs.map((r) => (r.kafkaCpuSeconds ?? Number.NaN) / (r.endToEndSeconds ?? r.ackSeconds))) : undefined,
      loadCores: median(rs.map((r) => r.loadCpuSeconds / (r.endToEndSeconds ?? r.ackSeconds))),
      nodePeakRssMb: median(rs.map((r) => r.nodePeakRssBytes / 1024 / 1024)),
      ofSpoolOnly: median(rs.map((r) => r.messagesPerSecond)) / spoolOnlyRate,
      kafkaMegabytesPerSecond: setup === 'kafka' ? median(rs.map((r) => (r.kafkaLogBytes ?? Number.NaN) / seconds(r) / 1e6)) : undefined,
      replays: rs.reduce((n, r) => n + Math.max(0, (r.recordsInKafka ?? r.uplinks) - r.uplinks), 0),
      // Published but not in Kafka (kafka set-up) or not acknowledged (the others).
      lost: rs.reduce((n, r) => n + Math.max(0, r.sent - (r.recordsInKafka ?? r.uplinks)), 0)
    }
  })
  const what: Record<Setup, string> = {
    kafka: 'into Kafka, end to end',
    'kafka-down': 'Kafka down: into the spool',
    'spool-only': 'no Kafka: MQTT QoS 1 into the spool'
  }
  const table = formatTable([
    ['set-up', 'uplinks/s', 'of spool-only', 'payload MB/s', 'MB/s into Kafka', 'PUBACK p50 ms', 'PUBACK p99 ms', 'node CPU-ms/1000', 'cores: node', 'Kafka', 'load', 'node peak RSS MiB', 'replays'],
    ...summary.map((s) => [`${s.setup} (${what[s.base]})`, fmtInt(s.messagesPerSecond), Number.isNaN(s.ofSpoolOnly) ? '-' : fmt(s.ofSpoolOnly, 2), fmt(s.megabytesPerSecond, 2),
      s.kafkaMegabytesPerSecond === undefined ? '-' : fmt(s.kafkaMegabytesPerSecond, 2), fmt(s.ackP50Ms, 0), fmt(s.ackP99Ms, 0),
      fmt(s.nodeCpuPerThousand * 1000, 1), fmt(s.nodeCores, 2), s.kafkaCores === undefined ? '-' : fmt(s.kafkaCores, 2), fmt(s.loadCores, 2), fmt(s.nodePeakRssMb, 0), String(s.replays)])
  ])
  const machine = machineInfo()
  process.stdout.write(`\nUplink throughput, one node, QoS 1: ${args.devices} devices x ${args.messages} uplinks of ${args.payload} bytes, window ${args.window}, ` +
    `fsync ${args.fsync}, ${args.partitions} partitions; median of ${args.rounds} round(s)` +
    `${args.nodeArgs.length > 0 ? `; node started with ${args.nodeArgs.join(' ')}` : ''}\n` +
    `${machine.cpus} x ${machine.cpuModel}, Node ${machine.node}; the load generator, the node and Kafka share these cores\n\n${table}\n`)
  await writeReport(args.out, { at: new Date().toISOString(), machine, args, summary, rounds: results })
  process.stdout.write(`\nwritten: ${args.out}\n`)
  const kafkaRow = summary.find((s) => s.base === 'kafka')
  if (args.summary !== undefined) {
    await writeSummary(args.summary, 'uplink-throughput', kafkaRow === undefined
      ? []
      : [
          figure({ name: 'QoS 1 uplinks/s into Kafka, one node (no reference: Mosquitto has no Kafka bridge)', unit: 'uplinks/s', ours: Math.round(kafkaRow.messagesPerSecond), target: `>= ${args.targetRate}` }),
          figure({ name: 'uplinks lost (published, not in Kafka)', unit: 'messages', ours: kafkaRow.lost, target: '<= 0' })
        ], kafkaRow === undefined ? ['the kafka set-up was not run (--setups)'] : [])
    process.stdout.write(`written: ${args.summary}\n`)
  }
}

await runBench(main, USAGE)
