// The coordinator: splits the fleet over worker processes (and source addresses), merges what they measure,
// runs the scenario's actions once the fleet is connected, and stops everything when the run is over.

import { fork, type ChildProcess } from 'node:child_process'
import { runAction, until, type ActionResult } from './actions.ts'
import { loadCredentials, saveCredentials } from './credentials.ts'
import type { DeviceDetail } from './device.ts'
import { SimError } from './errors.ts'
import { createHttpApi } from './http-api.ts'
import { emptySnapshot, mergeSnapshots, type Snapshot } from './metrics.ts'
import type { SimOptions } from './options.ts'
import type { DeviceCredentials, FromWorker, ToWorker } from './protocol.ts'
import { buildReport, progressLine, type Report } from './report.ts'
import type { Scenario } from './scenario.ts'
import { sourceEndpoints } from './source-endpoints.ts'

export interface Output {
  /** A line for the log (stderr-like, always shown). */
  log (line: string): void
  /** The progress line; `live` when it may overwrite itself (a TTY). */
  progress (line: string): void
}

// Compiled (devices-sim/dist) the worker is worker.js and runs on plain Node; from the source it is worker.ts and
// runs through tsx, as this module does.
const COMPILED = import.meta.url.endsWith('.js')
const WORKER = new URL(COMPILED ? './worker.js' : './worker.ts', import.meta.url)
const STOP_TIMEOUT_MS = 60_000

interface WorkerHandle {
  readonly child: ChildProcess
  latest: Snapshot
  done: { snap: Snapshot, details: readonly DeviceDetail[] } | undefined
  credentialsIn: boolean
  failure: string | undefined
}

/** Device ids `<prefix>-1` … `<prefix>-N`; device n joins group n mod count. */
export function fleet (options: Pick<SimOptions, 'devices' | 'prefix' | 'groups'>): DeviceCredentials[] {
  return Array.from({ length: options.devices }, (_, i) => ({
    id: `${options.prefix}-${i + 1}`,
    groups: options.groups.length === 0 ? [] : [options.groups[i % options.groups.length] as string]
  }))
}

/** Contiguous shares, as even as possible: 10 over 3 → 4, 3, 3. */
export function split<T> (items: readonly T[], parts: number): T[][] {
  const out: T[][] = []
  let at = 0
  for (let p = 0; p < parts; p++) {
    const size = Math.floor(items.length / parts) + (p < items.length % parts ? 1 : 0)
    out.push(items.slice(at, at + size))
    at += size
  }
  return out
}

export async function runSimulation (options: SimOptions, scenario: Scenario | undefined, out: Output): Promise<Report> {
  const startedAt = Date.now()
  const t0 = performance.now()
  const credentialsPath = options.credentials as string
  const cached = await loadCredentials(credentialsPath, options.url)
  const all = fleet(options).map((d) => {
    const c = cached.get(d.id)
    // A cached secret is reused only for the same groups: groups are set at provisioning.
    if (c?.secret === undefined || c.groups.join(',') !== d.groups.join(',')) return d
    return { ...d, secret: c.secret, ...(options.cacheTokens && c.token !== undefined && { token: c.token }) }
  })
  const known = new Map(cached)
  const shares = split(all, options.workers)
  // The coordinator's own node flags (as fork passes them by default), e.g. --cpu-prof for a profile of every worker.
  const execArgv = [...process.execArgv, ...(COMPILED ? [] : ['--import', import.meta.resolve('tsx')])]
  let offset = 0
  // Bumped by every snapshot a worker sends: the merged snapshot is rebuilt (every histogram decoded) only then,
  // not at each of the ten polls a second of the phases and actions below.
  let version = 0
  const workers: WorkerHandle[] = shares.map((devices, index) => {
    const child = fork(WORKER, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const h: WorkerHandle = { child, latest: emptySnapshot(), done: undefined, credentialsIn: false, failure: undefined }
    const sources = sourceEndpoints(options.sourceAddresses, offset, devices.length)
    offset += devices.length
    child.on('message', (msg: FromWorker) => {
      if (msg.type === 'snapshot' || msg.type === 'done') version++
      if (msg.type === 'snapshot') h.latest = msg.snap
      else if (msg.type === 'credentials') {
        for (const d of msg.devices) known.set(d.id, d)
        h.credentialsIn = true
      } else if (msg.type === 'done') {
        h.latest = msg.snap
        h.done = { snap: msg.snap, details: msg.details }
        for (const { id, token } of msg.tokens) {
          const d = known.get(id)
          if (d !== undefined) known.set(id, { ...d, token })
        }
      } else h.failure = msg.message
    })
    // 'close' comes after the last IPC message was delivered ('exit' may come before it).
    child.on('close', (code, signal) => {
      if (h.done === undefined && h.failure === undefined) h.failure = `worker ${index} exited (${signal ?? code}) before it finished`
    })
    const start: ToWorker = { type: 'start', index, options, devices, sources, rampPerSecond: options.ramp / shares.length }
    child.send(start)
    return h
  })
  const stopAll = (): void => { for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL') }
  process.once('exit', stopAll)
  const failed = (): string | undefined => workers.find((w) => w.failure !== undefined)?.failure
  let merged: { version: number, snap: Snapshot } | undefined
  const current = (): Snapshot => {
    if (merged?.version !== version) merged = { version, snap: mergeSnapshots(workers.map((w) => w.latest)) }
    return merged.snap
  }
  const connected = (): number => workers.reduce((n, w) => n + w.latest.connected, 0)

  const progressEvery = options.progress > 0 ? options.progress : 5000
  let prev: Snapshot | undefined
  let provisioned = options.devices
  const ticker = setInterval(() => {
    const s = current()
    out.progress(progressLine(performance.now() - t0, s, prev, provisioned))
    prev = s
  }, progressEvery)

  try {
    // Provisioning: every worker reports the credentials it has, then the cache is saved (before any risk).
    await until(() => workers.every((w) => w.credentialsIn) || failed() !== undefined, 24 * 3_600_000)
    if (failed() !== undefined) throw new SimError('SIM_ERR_WORKER', failed() as string)
    await saveCredentials(credentialsPath, options.url, known)
    const deviceIds = all.map((d) => d.id).filter((id) => known.get(id)?.secret !== undefined)
    provisioned = deviceIds.length
    out.log(`provisioned: ${provisioned} of ${options.devices} devices have credentials (cache ${credentialsPath})`)

    const phaseStart = performance.now()
    await until(() => connected() >= provisioned || failed() !== undefined, options.connectTimeout)
    const connectPhaseMs = performance.now() - phaseStart
    const connectedAfterPhase = connected()
    out.log(`connect phase: ${connectedAfterPhase} of ${provisioned} connected in ${Math.round(connectPhaseMs)} ms`)

    const runStart = performance.now()
    const groups = new Map<string, string[]>()
    for (const d of all) for (const g of d.groups) if (known.get(d.id)?.secret !== undefined) groups.set(g, [...(groups.get(g) ?? []), d.id])
    const ctx = {
      api: createHttpApi(options.url, { adminKey: options.adminKey, provisioningKey: options.provisioningKey }),
      deviceIds,
      groups,
      fleet: () => provisioned,
      current,
      expect: (count: number) => { for (const w of workers) w.child.send({ type: 'expect', count } satisfies ToWorker) },
      killNode: options.killNode,
      killPid: options.killPid,
      killCommand: options.killCommand,
      log: out.log
    }
    const actions: ActionResult[] = []
    for (const a of scenario?.actions ?? []) {
      if (failed() !== undefined) break
      try {
        actions.push(await runAction(ctx, a))
      } catch (err) {
        actions.push({ do: a.do, ok: false, error: (err as Error).message })
        out.log(`action ${a.do} failed: ${(err as Error).message}`)
      }
    }
    const left = options.duration - (performance.now() - runStart)
    if (left > 0) await until(() => failed() !== undefined, left, 200)
    const runMs = performance.now() - runStart
    if (failed() !== undefined) throw new SimError('SIM_ERR_WORKER', failed() as string)

    for (const w of workers) w.child.send({ type: 'stop' } satisfies ToWorker)
    const stopped = await until(() => workers.every((w) => w.done !== undefined || w.failure !== undefined), STOP_TIMEOUT_MS)
    if (!stopped || failed() !== undefined) throw new SimError('SIM_ERR_WORKER', failed() ?? 'workers did not finish within 60 s')
    if (options.cacheTokens) await saveCredentials(credentialsPath, options.url, known)
    const final = mergeSnapshots(workers.map((w) => w.done?.snap ?? w.latest))
    return buildReport({
      options,
      scenario: scenario?.name ?? null,
      startedAt,
      connectPhaseMs,
      connectedAfterPhase,
      runMs,
      provisioned,
      final,
      actions,
      details: workers.flatMap((w) => w.done?.details ?? [])
    })
  } finally {
    clearInterval(ticker)
    await Promise.all(workers.map((w) => w.child.exitCode !== null || w.child.signalCode !== null
      ? undefined
      : Promise.race([new Promise((resolve) => w.child.once('exit', resolve)), new Promise((resolve) => setTimeout(resolve, 5000).unref())])))
    stopAll()
    process.removeListener('exit', stopAll)
  }
}
