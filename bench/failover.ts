// Benchmark (prints figures; not a test): the Redis primary SIGKILLed under load, three times.
//
//   flock /tmp/pushline-bench.lock npx tsx bench/failover.ts --devices 600 --runs 3
//   npx tsx bench/failover.ts --help
//
// Needs the highly available services (`scripts/services.sh ha-up`: a Redis primary, a replica, three Sentinels and
// three Kafka brokers); starts them when they are not running and stops them again at the end. Each run: an API
// process and three broker nodes reaching Redis through the Sentinels; the devices are provisioned over HTTP, each
// holds a persistent session on node i % 3, subscribes its down topic at QoS 1 and sends a QoS 1 uplink every
// --uplink-ms (the next one after the PUBACK). A push to every device starts, the primary is SIGKILLed at once.
// Measured per run: time from the kill to every process ready again; the longest any device waited for a PUBACK;
// acknowledged uplinks missing from Kafka; devices online throughout without the push and without a receipt
// saying why (pushes lost); and the cluster's online count and summed presence drift over time after the kill.
// The killed server comes back as a replica before the next run.

import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { Kafka, logLevel } from 'kafkajs'
import mqtt, { type MqttClient } from 'mqtt'
import { createAdminClient } from './lib/admin-api.ts'
import { startPushline, type PushlineProcess } from './lib/brokers.ts'
import { deleteRedisPrefix, mapConcurrent, provisionOverHttp } from './lib/devices.ts'
import { ensureHaServices, haServicesScript, sentinelPrimary, sentinelSettings } from './lib/ha-services.ts'
import { commonOptions, exitOnHelp, intOption, runBench, setDeadline, writeReport } from './lib/lifecycle.ts'
import { fmtInt, machineInfo } from './lib/stats.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const SERVICES = haServicesScript(ROOT)

const USAGE = `usage: npx tsx bench/failover.ts [options]

  --devices N       devices, spread over 3 broker nodes (default 600)
  --runs N          failovers (default 3)
  --uplink-ms N     pause between a device's PUBACK and its next uplink (default 500)
  --heartbeat-ms N  PUSHLINE_HEARTBEAT_MS of every process (default 1000)
  --main PATH       platform entry (default: src/main.ts through tsx)
  --out PATH        JSON result (default bench-results/failover.json)
  --max-seconds N   abort the whole run after this long (default 900)
  --keep-logs       keep the processes' temp dirs with their logs
  --help`

interface Device {
  readonly id: string
  readonly client: MqttClient
  dropped: boolean
  gotPush: boolean
  readonly acked: string[]
}

interface RunResult {
  readonly readyMs: number
  readonly driftZeroMs: number
  readonly longestPubackPauseMs: number
  readonly uplinksAcked: number
  readonly uplinksLost: number
  readonly pushTargets: number
  readonly pushesLost: number
  readonly devicesDropped: number
  /** [ms after the kill, online count, summed |drift| over the nodes], one entry per change. */
  readonly drift: Array<[number, number, number]>
}

const run = promisify(execFile)

async function until (what: string, check: () => Promise<boolean>, ms: number, every = 100): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - started
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(every)
  }
}

async function oneRun (n: number, args: { devices: number, uplinkMs: number, heartbeatMs: number, main: string, nodeArgs: string[], keepLogs: boolean }, env: Record<string, string>, log: (line: string) => void): Promise<RunResult> {
  const runId = randomUUID().slice(0, 6)
  const prefix = `bench-fo-${runId}:`
  const topic = `bench.failover.${runId}`
  const redisPorts = (env.PUSHLINE_TEST_HA_REDIS_PORTS as string).split(',').map(Number)
  const shared = {
    ...sentinelSettings(env),
    PUSHLINE_HEARTBEAT_MS: String(args.heartbeatMs),
    PUSHLINE_SECRET_HASH_COST: '10',
    PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000',
    PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE: '100000'
  }
  const start = (name: string, extra: Record<string, string>): Promise<PushlineProcess> =>
    startPushline({ name, main: args.main, nodeArgs: args.nodeArgs, keepLogs: args.keepLogs, redisPrefix: prefix, env: { ...shared, PUSHLINE_REDIS_PREFIX: prefix, ...extra } })
  const api = await start(`fo${n}-api`, { PUSHLINE_ROLE: 'api' })
  const stops: Array<() => Promise<unknown>> = [() => api.stop(5000)]
  const clients: MqttClient[] = []
  try {
    const nodes = await Promise.all([1, 2, 3].map((i) => start(`fo${n}-node${i}`, {
      PUSHLINE_ROLE: 'broker',
      PUSHLINE_NODE_ID: `fo-${runId}-${i}`,
      PUSHLINE_KAFKA_BROKERS: env.PUSHLINE_TEST_HA_KAFKA_BROKERS as string,
      PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic,
      PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: '3',
      PUSHLINE_UPLINK_RATE_PER_SECOND: '0'
    })))
    for (const node of nodes) stops.push(() => node.stop(5000))
    const admin = createAdminClient(log)
    await until('nodes registered', async () => ((await admin.call(api.httpUrl, 'GET', '/v1/admin/nodes')).nodes as unknown[]).length === 3, 30_000)

    const ids = Array.from({ length: args.devices }, (_, i) => `fo${runId}-${i}`)
    const creds = await provisionOverHttp({ httpUrl: api.httpUrl, adminKey: api.adminKey, deviceIds: ids, concurrency: 20 })
    const devices: Device[] = await mapConcurrent(creds, 50, async ({ deviceId, token }, i) => {
      const node = nodes[i % nodes.length] as PushlineProcess
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${node.mqttPort}`, { clientId: deviceId, username: deviceId, password: token, clean: false, reconnectPeriod: 500, connectTimeout: 10_000, protocolVersion: 4 })
      clients.push(client)
      const d: Device = { id: deviceId, client, dropped: false, gotPush: false, acked: [] }
      client.on('close', () => { d.dropped = true })
      client.on('message', () => { d.gotPush = true })
      await client.subscribeAsync(`devices/${deviceId}/down`, { qos: 1 })
      return d
    })

    // An object, so the loops see the change made outside them.
    const load = { sending: true }
    let acks = 0
    let longestPause = 0
    const senders = devices.map(async (d) => {
      for (let seq = 0; load.sending; seq++) {
        const sent = Date.now()
        const ok = await d.client.publishAsync(`devices/${d.id}/telemetry`, `${d.id}:${seq}`, { qos: 1 }).then(() => true, () => false)
        if (!ok) return
        longestPause = Math.max(longestPause, Date.now() - sent)
        d.acked.push(`${d.id}:${seq}`)
        acks++
        await sleep(args.uplinkMs)
      }
    })
    await until('uplinks flowing', async () => acks >= args.devices, 60_000)
    longestPause = 0

    const { pushId } = await admin.call(api.httpUrl, 'POST', '/v1/admin/push', { deviceIds: ids, data: { bench: 'failover' }, qos: 1, ttlSeconds: 600 }) as { pushId: string }
    const primaryPort = await sentinelPrimary(env)
    const server = redisPorts.indexOf(primaryPort) + 1
    const pid = Number(readFileSync(join(env.PUSHLINE_TEST_HA_DIR as string, `redis-${server}`, 'redis.pid'), 'utf8'))
    process.kill(pid, 'SIGKILL')
    const killedAt = Date.now()
    log(`  run ${n}: primary redis-${server} (pid ${pid}) SIGKILLed, push ${pushId} in progress`)

    const drift: Array<[number, number, number]> = []
    const sampler = { on: true }
    const sampling = (async () => {
      while (sampler.on) {
        try {
          const stats = await admin.call(api.httpUrl, 'GET', '/v1/admin/stats') as { online: number, nodes: Array<{ drift: number }> }
          const sum = stats.nodes.reduce((s, x) => s + Math.abs(x.drift), 0)
          const last = drift.at(-1)
          if (last === undefined || last[1] !== stats.online || last[2] !== sum) drift.push([Date.now() - killedAt, stats.online, sum])
        } catch {}
        await sleep(250)
      }
    })()
    const urls = [api.httpUrl, ...nodes.map((x) => x.httpUrl)]
    await until('a new primary and every process ready', async () => {
      if (await sentinelPrimary(env) === primaryPort) return false
      return (await Promise.all(urls.map(async (u) => (await fetch(`${u}/readyz`)).status))).every((s) => s === 200)
    }, 120_000, 50)
    const readyMs = Date.now() - killedAt
    const driftZeroMs = readyMs + await until('drift 0', async () => {
      const stats = await admin.call(api.httpUrl, 'GET', '/v1/admin/stats') as { online: number, nodes: Array<{ drift: number }> }
      return stats.online === args.devices && stats.nodes.every((x) => x.drift === 0)
    }, 60_000)
    const acksAtReady = acks
    await until('uplinks after the failover', async () => acks >= acksAtReady + args.devices, 60_000)
    load.sending = false
    await Promise.all(senders)
    await sleep(2 * args.heartbeatMs) // drift samples past the second heartbeat period
    sampler.on = false
    await sampling

    const throughout = devices.filter((d) => !d.dropped)
    await until('the push at every device online throughout', async () => throughout.every((d) => d.gotPush), 60_000).catch(() => {})
    const view = await admin.call(api.httpUrl, 'GET', `/v1/admin/push/${pushId}?limit=1000`) as { devices: Array<{ deviceId: string, state: string }>, next?: string }
    const states = new Map(view.devices.map((r) => [r.deviceId, r.state]))
    const pushesLost = throughout.filter((d) => !d.gotPush && !['failed', 'expired'].includes(states.get(d.id) ?? '')).length

    const acked = new Set(devices.flatMap((d) => d.acked))
    const seen = new Set<string>()
    const kafka = new Kafka({ brokers: (env.PUSHLINE_TEST_HA_KAFKA_BROKERS as string).split(','), clientId: `bench-${runId}`, logLevel: logLevel.NOTHING })
    const consumer = kafka.consumer({ groupId: `bench-${runId}` })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({ eachMessage: async ({ message }) => { seen.add(message.value?.toString() ?? '') } })
    await until('every acknowledged uplink in Kafka', async () => [...acked].every((a) => seen.has(a)), 60_000).catch(() => {})
    await consumer.disconnect()
    const uplinksLost = [...acked].filter((a) => !seen.has(a)).length

    await run('bash', [SERVICES, 'ha-redis-start', String(server)])
    return { readyMs, driftZeroMs, longestPubackPauseMs: longestPause, uplinksAcked: acked.size, uplinksLost, pushTargets: throughout.length, pushesLost, devicesDropped: devices.length - throughout.length, drift }
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})))
    for (const stop of stops.reverse()) await stop().catch(() => {})
    const primary = await sentinelPrimary(env).catch(() => undefined)
    if (primary !== undefined) await deleteRedisPrefix(`redis://127.0.0.1:${primary}`, prefix).catch(() => {})
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '600' },
      runs: { type: 'string', default: '3' },
      'uplink-ms': { type: 'string', default: '500' },
      'heartbeat-ms': { type: 'string', default: '1000' },
      ...commonOptions(ROOT, 'failover', 900)
    }
  })
  exitOnHelp(values.help, USAGE)
  setDeadline(intOption('max-seconds', values['max-seconds'], 60, 86_400) * 1000)
  const args = {
    devices: intOption('devices', values.devices, 3, 20_000),
    runs: intOption('runs', values.runs, 1, 20),
    uplinkMs: intOption('uplink-ms', values['uplink-ms'], 0, 60_000),
    heartbeatMs: intOption('heartbeat-ms', values['heartbeat-ms'], 50, 60_000),
    main: values.main ?? join(ROOT, 'src/main.ts'),
    nodeArgs: values.main === undefined ? ['--import', 'tsx'] : [],
    keepLogs: values['keep-logs']
  }
  const log = (line: string): void => { process.stdout.write(line + '\n') }

  const env = await ensureHaServices(ROOT, log)
  const machine = machineInfo()
  log(`failover benchmark: ${fmtInt(args.devices)} devices on 3 nodes, uplink every ${args.uplinkMs} ms after its PUBACK, heartbeat ${args.heartbeatMs} ms, ${args.runs} runs`)
  const results: RunResult[] = []
  for (let n = 1; n <= args.runs; n++) {
    const r = await oneRun(n, args, env, log)
    results.push(r)
    log(`  run ${n}: ready ${fmtInt(r.readyMs)} ms after the kill, drift 0 at ${fmtInt(r.driftZeroMs)} ms; longest PUBACK pause ${fmtInt(r.longestPubackPauseMs)} ms; ` +
      `uplinks lost ${r.uplinksLost} of ${fmtInt(r.uplinksAcked)} acknowledged; pushes lost ${r.pushesLost} of ${r.pushTargets} devices online throughout (${r.devicesDropped} dropped)`)
    log(`  run ${n}: presence after the kill [ms, online, |drift|]: ${r.drift.map(([t, o, d]) => `[${t}, ${o}, ${d}]`).join(' ')}`)
  }
  await writeReport(values.out, { machine, args, results })
  log(`written ${values.out}`)
}

await runBench(main, USAGE)
