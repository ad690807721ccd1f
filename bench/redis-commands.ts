// Measurement (prints figures; not a test): the Redis commands one Pushline node sends per device operation, from
// INFO commandstats of the test Redis (scripts/services.sh up), for docs/redis-scaling.md.
//
//   flock /tmp/pushline-bench.lock npx tsx bench/redis-commands.ts --devices 200
//
// One node (role all) on its own key prefix; CONFIG RESETSTAT before each phase, INFO commandstats after it, divided
// by the phase's operations: provisioning (create + token), connect (CONNECT with a persistent session and the
// SUBSCRIBEs a device makes), QoS 1 uplink, targeted push (one device, delivered and PUBACKed), broadcast (one push to
// all, per receiving device), and idle (per node and second: heartbeat, reconciliation, probes). The Redis must serve
// nobody else meanwhile, or the counts include their commands.

import { randomUUID } from 'node:crypto'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import mqtt, { type MqttClient } from 'mqtt'
import { createAdminClient } from './lib/admin-api.ts'
import { startPushline } from './lib/brokers.ts'
import { deleteRedisPrefix, mapConcurrent, provisionOverHttp } from './lib/devices.ts'
import { intOption, onCleanup, runBench } from './lib/lifecycle.ts'
import { ensureServices } from './lib/services.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const USAGE = 'usage: npx tsx bench/redis-commands.ts [--devices N] [--idle-seconds N]'

async function commandstats (redis: Redis): Promise<Map<string, number>> {
  const text = await redis.info('commandstats')
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1] as string, Number(m[2]))
  return out
}

async function until (done: () => boolean): Promise<void> {
  const end = Date.now() + 60_000
  while (!done()) {
    if (Date.now() > end) throw new Error('the devices did not receive every downlink within 60 s')
    await sleep(50)
  }
}

async function phase (redis: Redis, name: string, ops: number, fn: () => Promise<void>, log: (l: string) => void): Promise<void> {
  await sleep(300) // the node's writes of the previous phase have left
  await redis.call('CONFIG', 'RESETSTAT')
  await fn()
  await sleep(300)
  const stats = await commandstats(redis)
  stats.delete('config')
  stats.delete('info')
  const total = [...stats.values()].reduce((a, b) => a + b, 0)
  const parts = [...stats.entries()].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${(n / ops).toFixed(2)}`)
  log(`${name.padEnd(18)} ${(total / ops).toFixed(2).padStart(7)} commands per op (${ops} ops): ${parts.join(', ')}`)
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { devices: { type: 'string', default: '200' }, 'idle-seconds': { type: 'string', default: '10' }, help: { type: 'boolean', default: false } } })
  if (values.help) { process.stdout.write(USAGE + '\n'); return }
  const devices = intOption('devices', values.devices, 1, 10_000)
  const idleSeconds = intOption('idle-seconds', values['idle-seconds'], 1, 600)
  const log = (line: string): void => { process.stdout.write(line + '\n') }
  const services = await ensureServices(ROOT)
  const prefix = `bench-cmd-${randomUUID().slice(0, 6)}:`
  onCleanup(`delete Redis keys ${prefix}*`, () => deleteRedisPrefix(services.redisUrl, prefix))
  const redis = new Redis(services.redisUrl)
  onCleanup('close the stats connection', () => redis.disconnect())
  const node = await startPushline({
    name: 'cmd-node',
    main: join(ROOT, 'src/main.ts'),
    nodeArgs: ['--import', 'tsx'],
    redisUrl: services.redisUrl,
    redisPrefix: prefix,
    env: { PUSHLINE_SECRET_HASH_COST: '10', PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000', PUSHLINE_UPLINK_RATE_PER_SECOND: '0' }
  })
  onCleanup('stop the node', () => node.stop(5000))
  const admin = createAdminClient(log)
  const ids = Array.from({ length: devices }, (_, i) => `cmd-${i}`)
  log(`Redis commands per operation, one node, ${devices} devices (${services.redisUrl})`)

  let creds: Array<{ deviceId: string, token: string }> = []
  await phase(redis, 'provision', devices, async () => { creds = await provisionOverHttp({ httpUrl: node.httpUrl, adminKey: node.adminKey, deviceIds: ids, concurrency: 10 }) }, log)

  const clients: MqttClient[] = []
  onCleanup('close the devices', () => Promise.all(clients.map((c) => c.endAsync(true))))
  // An object, so the waits below see the devices' message handlers count.
  const got = { messages: 0 }
  await phase(redis, 'connect+subscribe', devices, async () => {
    await mapConcurrent(creds, 20, async ({ deviceId, token }) => {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${node.mqttPort}`, { clientId: deviceId, username: deviceId, password: token, clean: false, reconnectPeriod: 0, protocolVersion: 4 })
      c.on('message', () => { got.messages++ })
      await c.subscribeAsync([`devices/${deviceId}/down`, 'broadcast/all'], { qos: 1 })
      clients.push(c)
    })
  }, log)

  const perDevice = 10
  await phase(redis, 'uplink QoS 1', devices * perDevice, async () => {
    await Promise.all(clients.map(async (c, i) => {
      for (let n = 0; n < perDevice; n++) await c.publishAsync(`devices/${ids[i] as string}/telemetry`, `m${n}`, { qos: 1 })
    }))
  }, log)

  const pushes = Math.min(devices, 100)
  await phase(redis, 'targeted push', pushes, async () => {
    const before = got.messages
    for (let i = 0; i < pushes; i++) await admin.call(node.httpUrl, 'POST', '/v1/admin/push', { deviceId: ids[i], data: { i }, qos: 1 })
    await until(() => got.messages >= before + pushes)
  }, log)

  await phase(redis, 'broadcast (per device)', devices, async () => {
    const before = got.messages
    await admin.call(node.httpUrl, 'POST', '/v1/admin/push', { all: true, data: { all: 1 }, qos: 1 })
    await until(() => got.messages >= before + devices)
  }, log)

  await phase(redis, 'idle (per second)', idleSeconds, async () => { await sleep(idleSeconds * 1000) }, log)
}

await runBench(main, USAGE)
