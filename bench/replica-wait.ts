// Benchmark (prints figures; not a test): what waiting for a Redis replica (PUSHLINE_REDIS_WAIT_REPLICAS) costs the
// answers that promise durability: a device created (201), a targeted push accepted (202), a batch of devices (201).
//
//   flock /tmp/pushline-bench.lock npx tsx bench/replica-wait.ts
//   npx tsx bench/replica-wait.ts --concurrency 1,16,64 --requests 1000 --batches 4
//
// Needs the highly available services (`scripts/services.sh ha-up`); starts them when they are not running and
// stops them again at the end. Two API processes (PUSHLINE_ROLE=api) reach the primary through the Sentinels, one
// with PUSHLINE_REDIS_WAIT_REPLICAS=1 (the default) and one with 0, beside one broker node; both share the machine,
// the Redis primary and its replica, so their figures come from the same conditions. For each concurrency level and
// round, each process in turn (the order alternates by round) gets --requests device creates (POST
// /v1/admin/devices), then as many targeted pushes to the devices it just created (POST /v1/admin/push with
// deviceId). Then --batches requests of 10,000 devices each to POST /v1/admin/devices/batch, alternating processes.
// Printed: requests per second, p50 and p99 latency of each, medians over rounds, and the ratio wait / no wait.

import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { randomUUID } from 'node:crypto'
import { createAdminClient } from './lib/admin-api.ts'
import { BENCH_ADMIN_KEY, startPushline, type PushlineProcess } from './lib/brokers.ts'
import { deleteRedisPrefix } from './lib/devices.ts'
import { ensureHaServices, sentinelPrimary, sentinelSettings } from './lib/ha-services.ts'
import { runHttpLoad, type HttpLoadFigures, type HttpRequestSpec } from './lib/http-load.ts'
import { commonOptions, exitOnHelp, intOption, onCleanup, runBench, setDeadline, splitList, writeReport } from './lib/lifecycle.ts'
import { machineBusySeconds } from './lib/proc.ts'
import { fmt, fmtInt, machineInfo, median } from './lib/stats.ts'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const BATCH = 10_000

const USAGE = `usage: npx tsx bench/replica-wait.ts [options]

  --concurrency LIST  requests in flight, one level after the other (default 1,16,64)
  --requests N        creates, and as many pushes, per process, level and round (default 1000)
  --rounds N          rounds per level; the order of the two processes alternates (default 2)
  --batches N         batch requests of 10,000 devices per process (default 3; 0: none)
  --main PATH         platform entry (default: src/main.ts through tsx)
  --out PATH          JSON result (default bench-results/replica-wait.json)
  --max-seconds N     abort the whole run after this long (default 1200)
  --keep-logs         keep the processes' temp dirs with their logs
  --help`

const log = (line: string): void => { process.stdout.write(`${line}\n`) }
const AUTH = { authorization: `Bearer ${BENCH_ADMIN_KEY}` }

type Mode = 'wait' | 'nowait'
const MODES: readonly Mode[] = ['wait', 'nowait']

interface Figures { readonly perSecond: number, readonly p50Ms: number, readonly p99Ms: number }

function checked (what: string, f: HttpLoadFigures): HttpLoadFigures {
  if (f.ok !== f.requests) throw new Error(`${what}: ${f.requests - f.ok} of ${f.requests} failed: ${JSON.stringify(f.statuses)} ${f.errorSamples.slice(0, 2).join('; ')}`)
  return f
}

const medianOf = (rounds: readonly Figures[]): Figures => ({
  perSecond: median(rounds.map((f) => f.perSecond)),
  p50Ms: median(rounds.map((f) => f.p50Ms)),
  p99Ms: median(rounds.map((f) => f.p99Ms))
})

function row (label: string, on: Figures, off: Figures): string {
  return `${label.padEnd(26)} wait ${fmtInt(on.perSecond).padStart(6)}/s p50 ${fmt(on.p50Ms, 2).padStart(7)} p99 ${fmt(on.p99Ms, 2).padStart(7)} ms | ` +
    `no wait ${fmtInt(off.perSecond).padStart(6)}/s p50 ${fmt(off.p50Ms, 2).padStart(7)} p99 ${fmt(off.p99Ms, 2).padStart(7)} ms | ` +
    `ratio rate ${fmt(on.perSecond / off.perSecond, 2)} p50 ${fmt(on.p50Ms / off.p50Ms, 2)} p99 ${fmt(on.p99Ms / off.p99Ms, 2)}`
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '1,16,64' },
      requests: { type: 'string', default: '1000' },
      rounds: { type: 'string', default: '2' },
      batches: { type: 'string', default: '3' },
      ...commonOptions(ROOT, 'replica-wait', 1200)
    },
    strict: true
  })
  exitOnHelp(values.help, USAGE)
  setDeadline(intOption('max-seconds', values['max-seconds'], 60, 86_400) * 1000)
  const levels = splitList(values.concurrency).map((c) => intOption('concurrency', c, 1, 1000))
  const requests = intOption('requests', values.requests, 10, 100_000)
  const rounds = intOption('rounds', values.rounds, 1, 20)
  const batches = intOption('batches', values.batches, 0, 50)
  const main = values.main ?? join(ROOT, 'src/main.ts')
  const nodeArgs = values.main === undefined ? ['--import', 'tsx'] : []

  const env = await ensureHaServices(ROOT, log)
  const runId = randomUUID().slice(0, 8)
  const prefix = `bench-rw-${runId}:`
  const shared = {
    ...sentinelSettings(env),
    PUSHLINE_REDIS_PREFIX: prefix,
    PUSHLINE_LOG_LEVEL: 'warn'
  }
  onCleanup(`delete Redis keys ${prefix}*`, async () => {
    log(`deleted ${await deleteRedisPrefix(`redis://127.0.0.1:${await sentinelPrimary(env)}`, prefix)} Redis keys under ${prefix}`)
  })
  const start = (name: string, extra: Record<string, string>): Promise<PushlineProcess> =>
    startPushline({ name, main, nodeArgs, keepLogs: values['keep-logs'], redisPrefix: prefix, env: { ...shared, ...extra } })
  const broker = await start('rw-broker', { PUSHLINE_ROLE: 'broker' })
  onCleanup('stop broker', () => broker.stop())
  const apis = {} as Record<Mode, PushlineProcess>
  for (const mode of MODES) {
    apis[mode] = await start(`rw-api-${mode}`, { PUSHLINE_ROLE: 'api', PUSHLINE_REDIS_WAIT_REPLICAS: mode === 'wait' ? '1' : '0' })
    onCleanup(`stop api ${mode}`, () => apis[mode].stop())
  }
  const admin = createAdminClient(log)
  const machine = machineInfo()
  log(`run ${runId}: ${machine.cpus} CPUs (${machine.cpuModel}); ${fmtInt(requests)} creates and pushes per process, level and round; ${rounds} rounds; levels ${levels.join(', ')}`)
  const load0 = loadavg()
  const busy0 = machineBusySeconds()
  const wall0 = performance.now()

  const report: Record<string, unknown> = { runId, machine, args: values }
  const levelsReport: unknown[] = []
  for (const level of levels) {
    const creates: Record<Mode, Figures[]> = { wait: [], nowait: [] }
    const pushes: Record<Mode, Figures[]> = { wait: [], nowait: [] }
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 === 0 ? MODES : [...MODES].reverse()) {
        const ids = Array.from({ length: requests }, (_, i) => `rw-${mode}-c${level}-r${r}-${i}`)
        const created = checked(`creates (${mode}, ${level} in flight)`, await runHttpLoad(apis[mode].httpUrl,
          ids.map((id): HttpRequestSpec => ({ method: 'POST', path: '/v1/admin/devices', body: { id }, headers: AUTH })), level))
        const pushed = checked(`pushes (${mode}, ${level} in flight)`, await runHttpLoad(apis[mode].httpUrl,
          ids.map((deviceId, i): HttpRequestSpec => ({ method: 'POST', path: '/v1/admin/push', body: { deviceId, data: { n: i } }, headers: AUTH })), level))
        creates[mode].push(created)
        pushes[mode].push(pushed)
        log(`  ${level} in flight, round ${r + 1}, ${mode.padEnd(6)}: creates ${fmtInt(created.perSecond)}/s p50 ${fmt(created.p50Ms, 2)} p99 ${fmt(created.p99Ms, 2)} ms; ` +
          `pushes ${fmtInt(pushed.perSecond)}/s p50 ${fmt(pushed.p50Ms, 2)} p99 ${fmt(pushed.p99Ms, 2)} ms`)
      }
    }
    const c = { wait: medianOf(creates.wait), nowait: medianOf(creates.nowait) }
    const p = { wait: medianOf(pushes.wait), nowait: medianOf(pushes.nowait) }
    log(row(`device create, ${level} in flight`, c.wait, c.nowait))
    log(row(`targeted push, ${level} in flight`, p.wait, p.nowait))
    levelsReport.push({ concurrency: level, creates: c, pushes: p })
  }
  report.levels = levelsReport

  if (batches > 0) {
    const perRequestMs: Record<Mode, number[]> = { wait: [], nowait: [] }
    for (let b = 0; b < batches; b++) {
      for (const mode of b % 2 === 0 ? MODES : [...MODES].reverse()) {
        const devices = Array.from({ length: BATCH }, (_, i) => ({ id: `rw-${mode}-batch${b}-${i}` }))
        const t0 = performance.now()
        const res = await admin.call(apis[mode].httpUrl, 'POST', '/v1/admin/devices/batch', { devices }) as { failed: unknown[] }
        const ms = performance.now() - t0
        if (res.failed.length > 0) throw new Error(`batch (${mode}): ${res.failed.length} failed: ${JSON.stringify(res.failed.slice(0, 3))}`)
        perRequestMs[mode].push(ms)
        log(`  batch ${b + 1}, ${mode.padEnd(6)}: ${fmtInt(BATCH)} devices in ${fmt(ms, 0)} ms`)
      }
    }
    const on = median(perRequestMs.wait)
    const off = median(perRequestMs.nowait)
    log(`${'batch of 10,000 devices'.padEnd(26)} wait ${fmt(on, 0)} ms (${fmtInt(BATCH / on * 1000)} devices/s) | no wait ${fmt(off, 0)} ms (${fmtInt(BATCH / off * 1000)} devices/s) | ratio time ${fmt(on / off, 2)} (medians of ${batches})`)
    report.batch = { perRequestMs, medianMs: { wait: on, nowait: off } }
  }
  // What the waits themselves took, from the waiting process's histogram: one observation per WAIT round, which
  // every answer that arrived while the previous round was in flight shares.
  const metrics = await (await fetch(`${apis.wait.httpUrl}/metrics`, { signal: AbortSignal.timeout(30_000) })).text()
  const metric = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN)
  const waits = metric('pushline_redis_wait_seconds_count')
  const answers = 2 * requests * rounds * levels.length + batches
  const waitSeconds = metric('pushline_redis_wait_seconds_sum')
  log(`waits for the replica: ${fmtInt(waits)} WAIT rounds for ${fmtInt(answers)} answers, ${fmt(waitSeconds / waits * 1000, 2)} ms each on average (marker write and WAIT); ${metric('pushline_redis_wait_timeouts_total')} timed out`)
  report.waits = { count: waits, seconds: waitSeconds, timeouts: metric('pushline_redis_wait_timeouts_total') }
  if (admin.retries() > 0) log(`admin requests retried after a 503: ${admin.retries()}`)

  const wallS = (performance.now() - wall0) / 1000
  const busy = (machineBusySeconds() - busy0) / wallS
  log(`machine busy ${fmt(busy, 2)} of ${machine.cpus} CPUs on average during the run (all processes, this benchmark's included); load average ${load0.map((l) => fmt(l, 1)).join(' ')} at the start`)
  report.machineBusyCpus = busy
  await writeReport(values.out, report)
  log(`wrote ${values.out}`)
}

await runBench(main, USAGE)
