import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { backoffDelay, jittered } from '../../devices-sim/src/backoff.ts'
import { ConnectError, type DeviceConnection } from '../../devices-sim/src/connection.ts'
import { fleet, split } from '../../devices-sim/src/coordinator.ts'
import { loadCredentials, saveCredentials } from '../../devices-sim/src/credentials.ts'
import { SimDevice, type DeviceSettings } from '../../devices-sim/src/device.ts'
import { SimError } from '../../devices-sim/src/errors.ts'
import { LatencyHistogram, summarize } from '../../devices-sim/src/histogram.ts'
import type { HttpApi } from '../../devices-sim/src/http-api.ts'
import { IdTracker } from '../../devices-sim/src/id-tracker.ts'
import type { Limiter } from '../../devices-sim/src/limiter.ts'
import { emptySnapshot, mergeSnapshots } from '../../devices-sim/src/metrics.ts'
import { DEFAULTS, parseAddressList, parseArgs, parseDuration, parseOptionObject, resolveOptions } from '../../devices-sim/src/options.ts'
import { parseDownlink, telemetryPayload, toRanges } from '../../devices-sim/src/payload.ts'
import { buildReport, checkThresholds, errorRate } from '../../devices-sim/src/report.ts'
import { parseScenario } from '../../devices-sim/src/scenario.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'

const SCENARIOS = new URL('../../devices-sim/scenarios/', import.meta.url).pathname

const usageError = (pattern: RegExp) => (err: unknown): boolean => err instanceof SimError && err.code === 'SIM_ERR_USAGE' && pattern.test(err.message)

test('options are parsed in both --name value and --name=value forms, and flags take no value', () => {
  const { given, help } = parseArgs(['--devices', '500', '--qos=0', '--report-devices', '--groups', 'a, b', '--duration', '2m', '--max-error-rate', '0.01'])
  assert.equal(help, false)
  assert.equal(given.devices, 500)
  assert.equal(given.qos, 0)
  assert.equal(given.reportDevices, true)
  assert.deepEqual(given.groups, ['a', 'b'])
  assert.equal(given.duration, 120_000)
  assert.deepEqual(given.thresholds, { maxErrorRate: 0.01 })
  assert.equal(parseArgs(['--help']).help, true)
})

test('bad options are refused with a message that names the option', () => {
  assert.throws(() => parseArgs(['--devices', '0']), usageError(/--devices: expected an integer from 1/))
  assert.throws(() => parseArgs(['--devices', '1.5']), usageError(/--devices/))
  assert.throws(() => parseArgs(['--qos', '2']), usageError(/--qos/))
  assert.throws(() => parseArgs(['--engine', 'fast']), usageError(/--engine: expected one of mqttjs, light/))
  assert.throws(() => parseArgs(['--nope', '1']), usageError(/unknown option --nope/))
  assert.throws(() => parseArgs(['--devices']), usageError(/--devices needs a value/))
  assert.throws(() => parseArgs(['devices']), usageError(/unexpected argument/))
  assert.throws(() => parseArgs(['--prefix', 'a/b']), usageError(/--prefix/))
  assert.throws(() => parseArgs(['--groups', 'ok,b#d']), usageError(/"b#d" is not a group name/))
  assert.throws(() => parseArgs(['--jitter', '1.5']), usageError(/--jitter/))
  assert.throws(() => parseArgs(['--devices', '--qos', '1']), usageError(/--devices needs a value/))
  assert.throws(() => parseArgs(['--report-devices=yes']), usageError(/--report-devices takes no value/))
})

test('an option given twice keeps the last value; -h asks for help; scenario flags are on when true, off when false', () => {
  assert.equal(parseArgs(['--devices', '5', '--devices=7']).given.devices, 7)
  assert.equal(parseArgs(['-h']).help, true)
  assert.equal(parseOptionObject({ 'report-devices': true, devices: 3 }).reportDevices, true)
  assert.equal(parseOptionObject({ 'cache-tokens': 'true' }).cacheTokens, true)
  assert.equal(parseOptionObject({ 'report-devices': false }).reportDevices, undefined)
  assert.throws(() => parseOptionObject({ 'report-devices': 'maybe' }), usageError(/--report-devices: expected true or false/))
  assert.deepEqual(parseOptionObject({ groups: ['a', 'b'], clean: false }), { groups: ['a', 'b'], clean: false })
})

test('durations accept ms, s, m and h', () => {
  assert.equal(parseDuration('250', 'x'), 250)
  assert.equal(parseDuration('250ms', 'x'), 250)
  assert.equal(parseDuration('1.5s', 'x'), 1500)
  assert.equal(parseDuration('2m', 'x'), 120_000)
  assert.equal(parseDuration('1h', 'x'), 3_600_000)
  assert.throws(() => parseDuration('soon', 'x'), usageError(/--x: expected a duration/))
})

test('source address ranges expand in order and stay inside 127.0.0.0/8', () => {
  assert.deepEqual(parseAddressList('127.0.0.2-127.0.0.4,127.0.1.9'), ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.1.9'])
  assert.deepEqual(parseAddressList('127.0.0.255-127.0.1.1'), ['127.0.0.255', '127.0.1.0', '127.0.1.1'])
  assert.throws(() => parseAddressList('10.0.0.1'), usageError(/not in 127\.0\.0\.0\/8/))
  assert.throws(() => parseAddressList('127.0.0.9-127.0.0.2'), usageError(/ends before it starts/))
  assert.throws(() => parseAddressList('127.0.0.300'), usageError(/not an IPv4 address/))
  assert.throws(() => parseAddressList(' , '), usageError(/no address/))
})

test('the command line wins over the scenario, which wins over the defaults, threshold by threshold', () => {
  const o = resolveOptions(
    { devices: 100, telemetryRate: 5, thresholds: { maxErrorRate: 0.1, maxLostDownlinks: 0 } },
    { devices: 7, thresholds: { maxErrorRate: 0 } },
    { adminKey: 'from-env' }
  )
  assert.equal(o.devices, 7)
  assert.equal(o.telemetryRate, 5)
  assert.equal(o.qos, DEFAULTS.qos)
  assert.deepEqual(o.thresholds, { maxErrorRate: 0, maxLostDownlinks: 0 })
  assert.equal(o.adminKey, 'from-env')
  assert.equal(o.workers, 1)
  assert.equal(o.credentials, '.devices-sim/sim.json')
})

test('no worker process is given more than 18,000 devices', () => {
  assert.equal(resolveOptions({}, { devices: 100_000, adminKey: 'k' }).workers, 7)
  assert.throws(() => resolveOptions({}, { devices: 40_000, workers: 2, adminKey: 'k' }), usageError(/at most 18000 devices per worker process.*--workers 3/))
  assert.equal(resolveOptions({}, { devices: 3, workers: 8, adminKey: 'k' }).workers, 3)
})

test('a provisioning mode without its key, and a non-http URL, are refused', () => {
  assert.throws(() => resolveOptions({}, {}), usageError(/--provision admin needs --admin-key/))
  assert.throws(() => resolveOptions({}, { provision: 'provisioning' }), usageError(/needs --provisioning-key/))
  assert.doesNotThrow(() => resolveOptions({}, { provision: 'reuse' }))
  assert.throws(() => resolveOptions({}, { adminKey: 'k', url: 'mqtt://x' }), usageError(/--url/))
  assert.throws(() => resolveOptions({}, { adminKey: 'k', backoffBase: 5000, backoffMax: 100 }), usageError(/--backoff-max/))
})

test('devices are numbered from 1, spread over groups round-robin, and split evenly over workers', () => {
  const devices = fleet({ devices: 5, prefix: 'p', groups: ['a', 'b'] })
  assert.deepEqual(devices.map((d) => `${d.id}:${d.groups.join()}`), ['p-1:a', 'p-2:b', 'p-3:a', 'p-4:b', 'p-5:a'])
  assert.deepEqual(split([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3), [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]])
  assert.deepEqual(split([1], 1), [[1]])
})

test('backoff doubles from the base up to the cap, and jitter stays inside its band', () => {
  const opts = { base: 100, max: 1000, jitter: 0 }
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, opts)), [100, 200, 400, 800, 1000, 1000])
  assert.equal(backoffDelay(3, { base: 100, max: 1000, jitter: 1 }, () => 0), 0)
  assert.equal(backoffDelay(3, { base: 100, max: 1000, jitter: 1 }, () => 0.999999), 400)
  assert.equal(backoffDelay(3, { base: 100, max: 1000, jitter: 0.5 }, () => 0), 200)
  assert.equal(backoffDelay(1_000, opts), 1000, 'a huge attempt count does not overflow')
  assert.equal(jittered(1000, 0.2, () => 0), 900)
  assert.equal(jittered(1000, 0.2, () => 1), 1100)
})

test('downlink ids: gaps and duplicates are found, and out-of-order ids close the gap they left', () => {
  const ids = new IdTracker(0)
  for (const id of [1, 2, 4, 5, 2, 7]) ids.add(id)
  assert.equal(ids.duplicates, 1)
  assert.equal(ids.unique, 5)
  assert.equal(ids.lastContiguous, 2)
  assert.equal(ids.highest, 7)
  assert.equal(ids.gaps, 2, 'ids 3 and 6 are missing')
  assert.equal(ids.add(3), true)
  assert.equal(ids.lastContiguous, 5)
  assert.equal(ids.add(6), true)
  assert.equal(ids.gaps, 0)
  assert.equal(ids.lastContiguous, 7)
  assert.equal(ids.add(7), false)
  assert.equal(ids.duplicates, 2)
})

test('a fresh device misses id 1 as a gap; a reused device starts counting where its first id is', () => {
  const fresh = new IdTracker(0)
  fresh.add(2)
  assert.equal(fresh.gaps, 1)
  assert.equal(fresh.lastContiguous, 0)
  const reused = new IdTracker()
  reused.add(41)
  reused.add(42)
  assert.equal(reused.gaps, 0)
  assert.equal(reused.lastContiguous, 42)
  assert.equal(reused.has(40), true)
})

test('histograms give quantiles within 1% and merge across workers (through JSON, as over IPC) like one histogram', () => {
  const a = new LatencyHistogram()
  const b = new LatencyHistogram()
  const all = new LatencyHistogram()
  for (let i = 1; i <= 1000; i++) {
    (i % 2 === 0 ? a : b).record(i / 10)
    all.record(i / 10)
  }
  const merged = new LatencyHistogram()
  merged.add(JSON.parse(JSON.stringify(a)))
  merged.add(JSON.parse(JSON.stringify(b)))
  assert.deepEqual(summarize(merged), summarize(all))
  for (const [q, exact] of [[0.5, 50], [0.9, 90], [0.99, 99], [1, 100]] as const) {
    const got = merged.quantile(q)
    assert.ok(Math.abs(got - exact) / exact <= 0.01, `q${q}: ${got} vs ${exact}`)
  }
  assert.equal(summarize(merged).max, 100)
  assert.equal(summarize(merged).count, 1000)
  assert.equal(summarize(merged).mean, 50.05)
  // A copy made from the JSON form answers the same; long latencies (minutes) are recorded too.
  assert.deepEqual(summarize(LatencyHistogram.from(JSON.parse(JSON.stringify(all)))), summarize(all))
  const long = new LatencyHistogram()
  long.record(0)
  long.record(600_000)
  assert.equal(long.quantile(1), 600_000)
  assert.equal(long.quantile(0.5), 0)
  assert.ok(Number.isNaN(new LatencyHistogram().quantile(0.5)))
})

test('worker snapshots merge by addition: counters, nodes, broadcasts, memory', () => {
  const s1 = emptySnapshot()
  const s2 = emptySnapshot()
  s1.devices = 3
  s1.connected = 2
  s1.counters.uplinksAcked = 10
  s1.nodes = { n1: 2 }
  s1.broadcasts = { p1: { received: 2, maxMs: 30 } }
  s1.rssBytes = 100
  s2.devices = 2
  s2.connected = 2
  s2.counters.uplinksAcked = 5
  s2.nodes = { n1: 1, n2: 1 }
  s2.broadcasts = { p1: { received: 2, maxMs: 50 }, p2: { received: 1, maxMs: 5 } }
  s2.rssBytes = 50
  s1.errorReasons = { 'connect: ECONNREFUSED': 2 }
  s2.errorReasons = { 'connect: ECONNREFUSED': 1, 'token: 429': 4 }
  s1.histograms.uplink.record(3)
  s2.histograms.uplink.record(7)
  const m = mergeSnapshots([s1, JSON.parse(JSON.stringify(s2))])
  assert.equal(m.devices, 5)
  assert.equal(m.connected, 4)
  assert.equal(m.counters.uplinksAcked, 15)
  assert.deepEqual(m.nodes, { n1: 3, n2: 1 })
  assert.deepEqual(m.broadcasts, { p1: { received: 4, maxMs: 50 }, p2: { received: 1, maxMs: 5 } })
  assert.equal(m.rssBytes, 150)
  assert.deepEqual(m.errorReasons, { 'connect: ECONNREFUSED': 3, 'token: 429': 4 })
  assert.equal(m.histograms.uplink.count, 2)
  assert.equal(m.histograms.uplink.min, 3)
  assert.equal(m.histograms.uplink.max, 7)
})

test('thresholds pass at their limit, fail above it, and fail when there is no figure', () => {
  const s = emptySnapshot()
  s.connected = 9
  s.counters.uplinksSent = 100
  s.counters.uplinkErrors = 1
  s.counters.uplinksUnconfirmed = 2
  s.lostDownlinks = 0
  const checks = checkThresholds({ maxErrorRate: 0.01, maxLostUplinks: 3, maxLostDownlinks: 0, maxDownlinkP99Ms: 5, minConnectedRatio: 1 }, s, [], 10)
  assert.equal(errorRate(s), 0.01)
  assert.deepEqual(checks.map((c) => [c.name, c.ok]), [
    ['maxErrorRate', true], ['maxLostDownlinks', true], ['maxLostUplinks', true], ['maxDownlinkP99Ms', false], ['minConnectedRatio', false]
  ])
  assert.equal(checks.find((c) => c.name === 'maxDownlinkP99Ms')?.value, null)
  const kill = checkThresholds({ maxReconnectMs: 1000 }, s, [{ do: 'kill-node', ok: true, allBackMs: 1500 }], 10)
  assert.deepEqual(kill.map((c) => [c.value, c.ok]), [[1500, false]])
})

test('telemetry payloads have the requested size and carry sequence, time and device', () => {
  const p = telemetryPayload('dev-1', 42, 1_700_000_000_000, 200)
  assert.equal(p.length, 200)
  assert.deepEqual(Object.keys(JSON.parse(p.toString())), ['seq', 'ts', 'dev', 'pad'])
  assert.equal(JSON.parse(p.toString()).seq, 42)
  assert.ok(JSON.parse(telemetryPayload('a-very-long-device-id-0123456789', 1, 1, 48).toString()).dev)
})

test('downlinks are parsed only when they carry id, pushId and sentAt', () => {
  assert.deepEqual(parseDownlink(Buffer.from('{"id":3,"pushId":"p-1","sentAt":5,"data":{}}')), { id: 3, pushId: 'p-1', sentAt: 5 })
  assert.deepEqual(parseDownlink(Buffer.from('{"id":"p-1","pushId":"p-1","sentAt":5}')), { id: 'p-1', pushId: 'p-1', sentAt: 5 })
  assert.equal(parseDownlink(Buffer.from('not json')), undefined)
  assert.equal(parseDownlink(Buffer.from('{"id":3}')), undefined)
  assert.equal(parseDownlink(Buffer.from('null')), undefined)
})

test('acknowledged sequence numbers compress to ranges', () => {
  assert.deepEqual(toRanges([5, 1, 2, 3, 7, 8, 2]), [[1, 3], [5, 5], [7, 8]])
  assert.deepEqual(toRanges([]), [])
})

test('scenarios: options use the command-line names, actions get defaults, mistakes are named', () => {
  const s = parseScenario(JSON.stringify({ name: 'x', options: { devices: 20, 'telemetry-rate': 2, 'max-lost-downlinks': 0 }, actions: [{ do: 'broadcast', group: 'a' }, { do: 'wait', ms: 10 }] }), 'x.json')
  assert.equal(s.options.devices, 20)
  assert.equal(s.options.telemetryRate, 2)
  assert.deepEqual(s.options.thresholds, { maxLostDownlinks: 0 })
  assert.deepEqual(s.actions[0], { do: 'broadcast', count: 1, intervalMs: 1000, qos: 1, timeoutMs: 15_000, group: 'a' })
  const bad = (text: string, pattern: RegExp): void => assert.throws(() => parseScenario(text, 's.json'), (err: unknown) => err instanceof SimError && err.code === 'SIM_ERR_SCENARIO' && pattern.test(err.message))
  bad('{', /not valid JSON/)
  bad('[]', /a scenario is an object/)
  bad('{"steps": []}', /unknown field\(s\) steps/)
  bad('{"options": {"devices": "many"}}', /options: --devices/)
  bad('{"options": {"speed": 1}}', /unknown option --speed/)
  bad('{"actions": [{"do": "explode"}]}', /actions\[0\]: "do" must be one of/)
  bad('{"actions": [{"do": "broadcast", "qos": 2}]}', /broadcast.qos must be 0 or 1/)
  bad('{"actions": [{"do": "push", "group": "a"}]}', /push has no field "group"/)
  bad('{"actions": [{"do": "wait"}]}', /wait needs "ms"/)
  const y = parseScenario('name: y\noptions:\n  devices: 3\nactions:\n  - do: kill-node\n    nodeId: n1\n', 'y.yaml')
  assert.deepEqual(y.actions, [{ do: 'kill-node', timeoutMs: 120_000, nodeId: 'n1' }])
})

test('every scenario file in devices-sim/scenarios parses', { timeout: 120_000 }, async () => {
  const files = (await readdir(SCENARIOS)).filter((f) => /\.(json|ya?ml)$/.test(f))
  assert.deepEqual(files.map((f) => f.replace(/\..*$/, '')).sort(), ['broadcast-latency', 'connect-storm', 'node-failure', 'steady-telemetry', 'targeted-push'])
  for (const f of files) {
    const s = parseScenario(await readFile(join(SCENARIOS, f), 'utf8'), f)
    assert.equal(s.name, f.replace(/\..*$/, ''))
    assert.ok(s.description.length > 20, `${f} says what it measures`)
  }
})

test('the credential cache round-trips secrets, groups and tokens, and ignores a cache made for another platform', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sim-cred-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'sub', 'c.json')
  const token = { token: 'tk', expiresAt: 123, broker: { nodeId: 'n1', mqtt: 'mqtt://127.0.0.1:1' } }
  await saveCredentials(path, 'http://a', new Map([['d-1', { id: 'd-1', groups: ['g'], secret: 's1', token }], ['d-2', { id: 'd-2', groups: [] }]]))
  assert.equal((await stat(path)).mode & 0o777, 0o600)
  assert.deepEqual([...(await loadCredentials(path, 'http://a')).values()], [{ id: 'd-1', groups: ['g'], secret: 's1', token }])
  assert.equal((await loadCredentials(path, 'http://b')).size, 0)
  assert.equal((await loadCredentials(join(dir, 'absent.json'), 'http://a')).size, 0)
  await writeFile(path, '{oops')
  await assert.rejects(loadCredentials(path, 'http://a'), (err: unknown) => err instanceof SimError && err.code === 'SIM_ERR_CREDENTIALS' && /delete it/.test(err.message))
})

test('a run in which no device ever connected is reported as failed even without thresholds', () => {
  const options = resolveOptions({}, { devices: 10 }, { adminKey: 'k' })
  const input = { options, scenario: null, startedAt: 0, connectPhaseMs: 1, connectedAfterPhase: 0, runMs: 1, provisioned: 0, final: emptySnapshot(), actions: [], details: [] }
  assert.equal(buildReport(input).ok, false)
  const connected = emptySnapshot()
  connected.counters.connects = 10
  assert.equal(buildReport({ ...input, final: connected }).ok, true)
})

test('a broadcast sent before the device first connected counts as caught up, outside the latency histogram and the per-push tallies', { timeout: 120_000 }, async () => {
  const snap = emptySnapshot()
  let deliver: ((topic: string, payload: Buffer) => void) | undefined
  const conn: DeviceConnection = {
    publish: async () => {},
    subscribe: async (filters) => filters.map(() => 1),
    onMessage (handler) { deliver = handler },
    onClose () {},
    end () {}
  }
  const settings: DeviceSettings = { telemetryRate: 0, qos: 1, payloadBytes: 64, jitter: 0, keepalive: 60, clean: true, backoffBase: 100, backoffMax: 1000, refreshAfter: 3, connectTimeoutMs: 1000, reportDevices: false }
  const token = { token: 't', expiresAt: Date.now() + 60_000, broker: { nodeId: 'n1', mqtt: 'mqtt://127.0.0.1:1' } }
  const device = new SimDevice('d-1', [], 'secret', true, undefined, { api: {} as HttpApi, http: {} as Limiter, connect: async () => conn, snap, settings }, token)
  device.start()
  await waitUntil('the simulated device to connect', () => snap.counters.connects > 0, 30_000, 5)
  assert.equal(snap.counters.connects, 1)
  const downlink = (pushId: string, sentAt: number): Buffer => Buffer.from(JSON.stringify({ id: pushId, pushId, sentAt, data: 1 }))
  deliver?.('broadcast/all', downlink('p-earlier', Date.now() - 90_000))
  deliver?.('broadcast/all', downlink('p-live', Date.now()))
  device.stop()
  assert.equal(snap.counters.broadcasts, 2)
  assert.equal(snap.counters.broadcastsCaughtUp, 1)
  assert.equal(snap.histograms.broadcast.count, 1)
  assert.ok(snap.histograms.broadcast.max < 60_000, 'the caught-up one is not in the latency')
  assert.deepEqual(Object.keys(snap.broadcasts), ['p-live'])
})

/** Connect attempts a device made, on a node that fails every connect with `failure`, before it asked the registry for a new token. */
async function attemptsBeforeNewToken (failure: ConnectError): Promise<number> {
  const snap = emptySnapshot()
  const settings: DeviceSettings = { telemetryRate: 0, qos: 1, payloadBytes: 64, jitter: 0, keepalive: 60, clean: true, backoffBase: 1, backoffMax: 4, refreshAfter: 3, connectTimeoutMs: 1000, reportDevices: false }
  const token = { token: 't', expiresAt: Date.now() + 60_000, broker: { nodeId: 'n1', mqtt: 'mqtt://127.0.0.1:1' } }
  let attempts = 0
  let device: SimDevice | undefined
  const asked = new Promise<number>((resolve) => {
    const api = {
      token: async () => {
        // The marker: the device stops here, so what it did before is all there is to count.
        device?.stop()
        resolve(attempts)
        return token
      }
    } as unknown as HttpApi
    const http = { run: async <T>(task: () => Promise<T>): Promise<T> => await task() } as unknown as Limiter
    device = new SimDevice('d-1', [], 'secret', true, undefined, { api, http, connect: async () => { attempts++; throw failure }, snap, settings }, token)
  })
  device?.start()
  return await bounded('the device to ask the registry for a new token', asked)
}

test('a device drops its token at once only on CONNACK 4 or 5; a 3 or a network error keeps it for --refresh-after failures in a row', { timeout: 60_000 }, async () => {
  assert.equal(await attemptsBeforeNewToken(new ConnectError('refused', 'CONNACK 4', 4)), 1, 'bad user name or password')
  assert.equal(await attemptsBeforeNewToken(new ConnectError('refused', 'CONNACK 5', 5)), 1, 'not authorised')
  assert.equal(await attemptsBeforeNewToken(new ConnectError('refused', 'CONNACK 3', 3)), 3, 'server unavailable: the node is draining or restarting')
  assert.equal(await attemptsBeforeNewToken(new ConnectError('network', 'ECONNREFUSED')), 3, 'a network error')
})
