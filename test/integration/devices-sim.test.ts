import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Report } from '../../devices-sim/src/report.ts'
import { startTestCluster } from '../helpers/cluster.ts'
import { consumeUntil, uniqueTopic } from '../helpers/kafka.ts'
import { ADMIN_KEY } from '../helpers/platform.ts'
import { runNode, startPlatformProcess, tempDir, type PlatformProcess } from '../helpers/process.ts'
import { kafkaBrokers, redisUrl, uniquePrefix } from '../helpers/services.ts'

// The device simulator (devices-sim) against a real cluster: broker processes on Redis, the API as its own
// platform, uplinks into the real Kafka. The simulator runs as a user runs it, through its bin launcher.

const SCENARIOS = new URL('../../devices-sim/scenarios/', import.meta.url).pathname

interface SimRun {
  readonly code: number | null
  readonly report: Report
  readonly out: string
}

async function runSim (p: PlatformProcess, reportPath: string, ms: number): Promise<SimRun> {
  let timer: NodeJS.Timeout | undefined
  const code = await Promise.race([p.exited, new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms) })])
  clearTimeout(timer)
  assert.notEqual(code, 'timeout', `devices-sim did not finish within ${ms} ms:\n${p.stdout()}\n${p.stderr()}`)
  const out = p.stdout() + p.stderr()
  let report: Report
  try {
    report = JSON.parse(await readFile(reportPath, 'utf8')) as Report
  } catch {
    assert.fail(`no report (exit ${String(code)}):\n${out}`)
  }
  return { code: code as number | null, report, out }
}

const simId = (): string => uniquePrefix().replace(/[^A-Za-z0-9]/g, '')

test('500 simulated devices connect, send telemetry that reaches Kafka, get a broadcast and a targeted push, and move off a SIGKILLed node with no acknowledged uplink lost', { timeout: 240_000 }, async (t) => {
  const topic = uniqueTopic('sim')
  const kafkaEnv = { PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','), PUSHLINE_KAFKA_TELEMETRY_TOPIC: topic, PUSHLINE_KAFKA_PRESENCE_TOPIC: uniqueTopic('sim-presence'), PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: '3', PUSHLINE_HEARTBEAT_MS: '1000' }
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 1000, env: kafkaEnv })
  // The node to kill keeps its data directory: the uplinks it acknowledged are in its spool, and reach Kafka
  // when it comes back (the spool is the write-ahead log, docs/mqtt.md).
  const victimId = `${cluster.prefix.replace(/[^A-Za-z0-9]/g, '')}-victim`
  const victimEnv = { PUSHLINE_ROLE: 'broker', PUSHLINE_NODE_ID: victimId, PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: cluster.prefix, PUSHLINE_PUBLIC_HOST: '127.0.0.1', PUSHLINE_DATA_DIR: await tempDir(t), ...kafkaEnv }
  const victim = { ...await startPlatformProcess(t, victimEnv), nodeId: victimId }
  await cluster.waitForNodes([victimId])
  const dir = await tempDir(t)
  const scenario = join(dir, 'scenario.json')
  await writeFile(scenario, JSON.stringify({
    name: 'test-fleet',
    options: { devices: 500, ramp: 250, groups: 'east,west', 'telemetry-rate': 1, qos: 1, 'payload-bytes': 80, duration: '3s', workers: 2, 'report-devices': true },
    actions: [
      { do: 'wait-connected', timeoutMs: 120_000 },
      { do: 'wait', ms: 1500 },
      { do: 'broadcast', timeoutMs: 30_000 },
      { do: 'push', timeoutMs: 60_000 },
      { do: 'kill-node', nodeId: victim.nodeId, pid: victim.child.pid as number, timeoutMs: 90_000 }
    ]
  }))
  const prefix = simId()
  const reportPath = join(dir, 'report.json')
  const sim = runNode(t, ['devices-sim/bin/devices-sim.js', '--url', cluster.api.httpUrl, '--admin-key', ADMIN_KEY, '--prefix', prefix,
    '--credentials', join(dir, 'credentials.json'), '--scenario', scenario, '--report', reportPath, '--max-lost-downlinks', '0'], {})
  const { code, report, out } = await runSim(sim, reportPath, 220_000)
  assert.equal(code, 0, out)
  assert.equal(report.ok, true, out)

  assert.equal(report.devices.provisioned, 500)
  assert.equal(report.devices.connectedAtEnd, 500, 'every device is connected at the end')
  const [broadcast, push, kill] = report.actions.slice(2) as Array<Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any -- action results are free-form JSON
  assert.equal(broadcast?.pushes[0].received, 500, 'every device got the broadcast')
  assert.equal(push?.rounds[0].counts.acked, 500, 'every device acked the targeted push')
  assert.equal(report.downlinks.lost, 0)
  assert.equal(report.downlinks.received + report.downlinks.pulled, 500)

  assert.equal(kill?.nodeId, victim.nodeId)
  assert.ok((kill?.devicesOnNode as number) > 50, `the killed node held devices (${String(kill?.devicesOnNode)})`)
  assert.equal(typeof kill?.allBackMs, 'number', 'every device came back')
  assert.equal(report.nodesAtEnd[victim.nodeId], undefined, 'no device is on the killed node')
  const detail = report.deviceDetail ?? []
  assert.equal(detail.length, 500)
  const moved = detail.filter((d) => d.nodes.includes(victim.nodeId))
  assert.equal(moved.length, kill?.devicesOnNode)
  for (const d of moved) assert.notEqual(d.nodes[d.nodes.length - 1], victim.nodeId, `${d.id} reconnected elsewhere`)
  assert.ok(report.counters.reconnects >= moved.length)

  // Every uplink that got a PUBACK is in Kafka, for every device.
  const acked = new Map(detail.map((d) => [d.id, new Set(d.uplinksAcked.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i)))]))
  for (const [id, seqs] of acked) assert.ok(seqs.size > 0, `${id} had telemetry acknowledged`)
  const total = [...acked.values()].reduce((n, s) => n + s.size, 0)
  assert.equal(total, report.uplinks.acked)
  await startPlatformProcess(t, victimEnv)
  const missing = (records: ReadonlyArray<{ key: string, value: Buffer }>): number => {
    const seen = new Map<string, Set<number>>()
    for (const r of records) {
      const seq = (JSON.parse(r.value.toString()) as { seq: number }).seq
      const s = seen.get(r.key) ?? new Set<number>()
      s.add(seq)
      seen.set(r.key, s)
    }
    let n = 0
    for (const [id, seqs] of acked) for (const seq of seqs) if (seen.get(id)?.has(seq) !== true) n++
    return n
  }
  let seen: ReadonlyArray<{ key: string, value: Buffer }> = []
  await consumeUntil(t, topic, (r) => { seen = r; return r.length >= total && missing(r) === 0 }, 60_000).catch((err: Error) => {
    assert.fail(`${err.message}: ${missing(seen)} of ${total} acknowledged uplinks not in Kafka`)
  })
  assert.equal(missing(seen), 0)
})

test('each scenario file runs end to end with a few devices', { timeout: 240_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: 1000 })
  const victim = cluster.nodes[2] as (typeof cluster.nodes)[number]
  const dir = await tempDir(t)
  const files = await readdir(SCENARIOS)
  assert.equal(files.length, 5)
  const run = async (file: string, engine = 'mqttjs'): Promise<void> => {
    const reportPath = join(dir, `${file}.${engine}.report.json`)
    const extra = file.startsWith('node-failure') ? ['--kill-node', victim.nodeId, '--kill-pid', String(victim.child.pid)] : []
    const sim = runNode(t, ['devices-sim/bin/devices-sim.js', '--scenario', join(SCENARIOS, file), '--url', cluster.api.httpUrl, '--admin-key', ADMIN_KEY,
      '--prefix', simId(), '--credentials', join(dir, `${file}.${engine}.credentials.json`), '--devices', '12', '--groups', 'north,south', '--duration', '1s', '--ramp', '100',
      '--telemetry-rate', '2', '--engine', engine, '--report', reportPath, ...extra], {})
    const { code, report, out } = await runSim(sim, reportPath, 120_000)
    assert.equal(code, 0, `${file} (${engine}):\n${out}`)
    assert.equal(report.scenario, file.replace(/\..*$/, ''))
    assert.equal(report.devices.connectedAtEnd, 12, `${file}: every device connected`)
    assert.ok(report.actions.every((a) => a.ok), `${file}: ${JSON.stringify(report.actions)}`)
    assert.ok(report.uplinks.acked > 0, `${file}: telemetry acknowledged`)
  }
  // The node-failure run kills a node, so it runs after the others, which run side by side.
  await Promise.all([...files.filter((f) => !f.startsWith('node-failure')).map((f) => run(f)), run('targeted-push.json', 'light')])
  await run(files.find((f) => f.startsWith('node-failure')) as string)
})

test('the simulator refuses bad options and bad scenario files with exit code 2 and says why', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t)
  const broken = join(dir, 'broken.json')
  await writeFile(broken, JSON.stringify({ options: { devices: 3 }, actions: [{ do: 'broadcast', qos: 7 }] }))
  const cases: Array<[string[], RegExp]> = [
    [['--devices', 'many'], /--devices: expected an integer/],
    [['--admin-key', 'k', '--source-addresses', '10.0.0.1'], /not in 127\.0\.0\.0\/8/],
    [['--scenario', broken, '--admin-key', 'k'], /actions\[0\]: broadcast\.qos must be 0 or 1/],
    [['--scenario', join(dir, 'absent.json'), '--admin-key', 'k'], /cannot read/],
    [['--devices', '5'], /needs --admin-key/]
  ]
  await Promise.all(cases.map(async ([args, pattern]) => {
    const p = runNode(t, ['devices-sim/bin/devices-sim.js', ...args], {})
    assert.equal(await p.exited, 2, p.stderr())
    assert.match(p.stderr(), pattern)
  }))
  const help = runNode(t, ['devices-sim/bin/devices-sim.js', '--help'], {})
  assert.equal(await help.exited, 0)
  assert.match(help.stdout(), /--source-addresses/)
})
