// Benchmark (prints figures; not a test): Redis memory per device, for sizing a primary (docs/redis-scaling.md).
//
//   flock /tmp/pushline-bench.lock npx tsx bench/redis-memory.ts
//   npx tsx bench/redis-memory.ts --devices 20000 --online 3000
//
// Starts a Redis of its own (redis-server on a free loopback port, no persistence, nothing else in it) and one
// Pushline process (role all) on it, then grows the state one kind at a time and reads INFO memory's used_memory and
// DBSIZE after each step (the difference divided by the items added; the whole run, Redis's own buffers included):
// - registered device: --devices created through POST /v1/admin/devices/batch (no groups, no metadata);
// - token: one token issued to each of them (POST /v1/devices/{id}/token);
// - online device: --online of them connected over MQTT with a clean session and no subscription (presence entry,
//   the node's presence set, aedes's client record);
// - after they left: what an offline device keeps of its visit (last seen);
// - persistent session with one subscription: the same devices connected with clean=false, subscribed to their down
//   topic at QoS 1, then disconnected (the session stays).
// Each figure is also multiplied out for a million devices.

import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import mqtt, { type MqttClient } from 'mqtt'
import { createAdminClient } from './lib/admin-api.ts'
import { startPushline } from './lib/brokers.ts'
import { mapConcurrent } from './lib/devices.ts'
import { commonOptions, exitOnHelp, intOption, onCleanup, runBench, setDeadline, writeReport } from './lib/lifecycle.ts'
import { waitUntil } from './lib/proc.ts'
import { startPrivateRedis } from './lib/redis-server.ts'
import { fmt, fmtInt } from './lib/stats.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const BATCH = 10_000
const MILLION = 1_000_000

const USAGE = `usage: npx tsx bench/redis-memory.ts [options]

  --devices N     devices registered and given a token (default 20000)
  --online N      devices connected, then given a persistent session (default 2000)
  --main PATH     platform entry (default: src/main.ts through tsx)
  --out PATH      JSON result (default bench-results/redis-memory.json)
  --max-seconds N abort the whole run after this long (default 900)
  --keep-logs     keep the process's temp dir with its log
  --help`

const log = (line: string): void => { process.stdout.write(`${line}\n`) }

interface Sample { readonly usedMemory: number, readonly keys: number }

function infoField (info: string, name: string): number {
  const value = new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1]
  if (value === undefined) throw new Error(`INFO memory has no ${name}`)
  return Number(value)
}

/** used_memory without the clients' query and output buffers: those follow traffic, not the number of devices. */
async function sample (redis: Redis): Promise<Sample> {
  const info = await redis.info('memory')
  return { usedMemory: infoField(info, 'used_memory') - infoField(info, 'mem_clients_normal'), keys: await redis.dbsize() }
}

/** Keys grouped by name with device ids and long hex or base64url parts replaced, with their count and MEMORY USAGE. */
async function keyBreakdown (redis: Redis): Promise<Array<{ pattern: string, keys: number, bytes: number }>> {
  const groups = new Map<string, { keys: number, bytes: number }>()
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000)
    cursor = next
    for (const key of keys) {
      const pattern = key.replace(/mem-\d+/g, '{id}').replace(/[A-Za-z0-9_-]{20,}/g, '{hash}')
      const bytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
      const g = groups.get(pattern) ?? { keys: 0, bytes: 0 }
      g.keys++
      g.bytes += bytes
      groups.set(pattern, g)
    }
  } while (cursor !== '0')
  return [...groups].map(([pattern, g]) => ({ pattern, ...g })).sort((a, b) => b.bytes - a.bytes)
}

interface Step { readonly name: string, readonly items: number, readonly bytesPerItem: number, readonly keysPerItem: number }

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '20000' },
      online: { type: 'string', default: '2000' },
      ...commonOptions(ROOT, 'redis-memory', 900)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  setDeadline(intOption('max-seconds', values['max-seconds'], 60, 86_400) * 1000)
  const devices = intOption('devices', values.devices, 100, 1_000_000)
  const online = intOption('online', values.online, 10, Math.min(devices, 20_000))

  const server = await startPrivateRedis({ name: 'memory' })
  onCleanup('stop redis-server', () => server.stop())
  const { url: redisUrl, port, version } = server
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  onCleanup('close the Redis connection', () => redis.quit())

  const node = await startPushline({
    name: 'memory',
    main: values.main ?? join(ROOT, 'src/main.ts'),
    nodeArgs: values.main === undefined ? ['--import', 'tsx'] : [],
    redisUrl,
    redisPrefix: 'pushline:',
    keepLogs: values['keep-logs'],
    env: { PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000', PUSHLINE_UPLINK_RATE_PER_SECOND: '0' }
  })
  onCleanup('stop the node', () => node.stop())
  const admin = createAdminClient(log)
  // Tokens need a node to assign: wait for its first heartbeat.
  await waitUntil(async () => ((await admin.call(node.httpUrl, 'GET', '/v1/admin/nodes')).nodes as unknown[]).length > 0, 30_000, 100)
  log(`Redis ${version} on port ${port}, one Pushline process; ${fmtInt(devices)} devices, ${fmtInt(online)} online; load average ${loadavg().map((l) => fmt(l, 1)).join(' ')}`)

  const steps: Step[] = []
  let last = await sample(redis)
  log(`empty platform: used_memory (without client buffers) ${fmtInt(last.usedMemory)} B, ${last.keys} keys`)
  /** Adds a step measured from `since` (default: the previous step's reading). */
  async function step (name: string, items: number, since = last): Promise<void> {
    // Let in-flight writes and the node's timers settle.
    await sleep(1500)
    const now = await sample(redis)
    const s = { name, items, bytesPerItem: (now.usedMemory - since.usedMemory) / items, keysPerItem: (now.keys - since.keys) / items }
    steps.push(s)
    log(`${name.padEnd(46)} ${fmt(s.bytesPerItem, 0).padStart(6)} B each (${fmt(s.keysPerItem, 2)} keys each; ${fmtInt(items)} items) -> ` +
      `${fmt(s.bytesPerItem * MILLION / 2 ** 20, 0)} MiB per million`)
    last = now
  }

  const secrets = new Map<string, string>()
  for (let from = 0; from < devices; from += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, devices - from) }, (_, i) => ({ id: `mem-${from + i}` }))
    const res = await admin.call(node.httpUrl, 'POST', '/v1/admin/devices/batch', { devices: batch }) as { created: Array<{ id: string, secret: string }>, failed: unknown[] }
    if (res.failed.length > 0) throw new Error(`batch: ${res.failed.length} failed`)
    for (const c of res.created) secrets.set(c.id, c.secret)
  }
  await step('registered device (record + index entry)', devices)

  const tokens = new Map<string, string>()
  await mapConcurrent([...secrets], 32, async ([id, secret]) => {
    const issued = await admin.call(node.httpUrl, 'POST', `/v1/devices/${id}/token`, { secret }) as { token: string }
    tokens.set(id, issued.token)
  })
  await step('token (token key + the device\'s token set)', devices)

  const ids = [...tokens.keys()].slice(0, online)
  const mqttUrl = `mqtt://${node.host}:${node.mqttPort}`
  const connect = (id: string, clean: boolean): Promise<MqttClient> =>
    mqtt.connectAsync(mqttUrl, { clientId: id, username: id, password: tokens.get(id), clean, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 30_000 })
  const countOnline = async (): Promise<number> => Number((await admin.call(node.httpUrl, 'GET', '/v1/admin/stats')).online ?? -1)
  const offline = last
  let clients = await mapConcurrent(ids, 32, (id) => connect(id, true))
  await waitUntil(async () => await countOnline().catch(() => -1) === online, 60_000, 200)
  await step('online device (presence entry + index entries)', online)
  await Promise.all(clients.map((c) => c.endAsync()))
  await waitUntil(async () => await countOnline().catch(() => -1) === 0, 60_000, 200)
  await step('left again: what stays of a visit (from before it)', online, offline)

  clients = await mapConcurrent(ids, 32, async (id) => {
    const c = await connect(id, false)
    await c.subscribeAsync(`devices/${id}/down`, { qos: 1 })
    return c
  })
  await Promise.all(clients.map((c) => c.endAsync()))
  await waitUntil(async () => await countOnline().catch(() => -1) === 0, 60_000, 200)
  await step('persistent session, one subscription (offline)', online)

  const bytes = (prefix: string): number => steps.find((s) => s.name.startsWith(prefix))?.bytesPerItem ?? 0
  const offlineDevice = bytes('registered') + bytes('token') + bytes('left') + bytes('persistent')
  log(`an offline device with a token, a persistent session and a past visit: ${fmt(offlineDevice, 0)} B -> ${fmt(offlineDevice * MILLION / 2 ** 30, 2)} GiB per million; ` +
    `online: ${fmt(offlineDevice + bytes('online') - bytes('left'), 0)} B -> ${fmt((offlineDevice + bytes('online') - bytes('left')) * MILLION / 2 ** 30, 2)} GiB per million ` +
    '(the token figure includes its per-device rate-limit counter, which expires after a minute)')
  const breakdown = await keyBreakdown(redis)
  log('keys at the end (MEMORY USAGE, SAMPLES 0):')
  for (const g of breakdown) log(`  ${g.pattern.padEnd(50)} ${fmtInt(g.keys).padStart(7)} keys ${fmtInt(g.bytes).padStart(12)} B  ${fmt(g.bytes / g.keys, 0).padStart(6)} B each`)
  await writeReport(values.out, { redisVersion: version, devices, online, steps, breakdown })
  log(`wrote ${values.out}`)
}

await runBench(main, USAGE)
