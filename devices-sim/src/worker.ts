// A worker process: holds a share of the fleet (at most 18,000 devices, one process may hold 20,000 open
// files), provisions what has no credentials yet, connects at its share of the ramp, and reports a cumulative
// snapshot every second until the coordinator says stop.

import { SimDevice, type DeviceSettings } from './device.ts'
import { createLightConnector } from './engine-light.ts'
import type { Connector } from './connection.ts'
import { SimError } from './errors.ts'
import { createHttpApi, MAX_BATCH, type HttpApi } from './http-api.ts'
import { Limiter } from './limiter.ts'
import { emptySnapshot, type Snapshot } from './metrics.ts'
import type { SimOptions } from './options.ts'
import type { DeviceCredentials, FromWorker, ToWorker } from './protocol.ts'

const SNAPSHOT_EVERY_MS = 1000
const QUIESCE_MS = 5000
const FINAL_PULL_MS = 10_000

const send = (msg: FromWorker, then?: () => void): void => { process.send?.(msg, undefined, {}, () => then?.()) }

/** Secrets for devices that have none yet; `fresh` marks devices created in this run. */
async function provision (api: HttpApi, http: Limiter, options: SimOptions, devices: readonly DeviceCredentials[], snap: Snapshot): Promise<Map<string, { secret: string, fresh: boolean }>> {
  const out = new Map<string, { secret: string, fresh: boolean }>()
  const missing: DeviceCredentials[] = []
  for (const d of devices) {
    if (d.secret !== undefined) out.set(d.id, { secret: d.secret, fresh: false })
    else missing.push(d)
  }
  if (missing.length > 0 && options.provision === 'reuse') throw new SimError('SIM_ERR_CREDENTIALS', `no cached credentials for ${(missing[0] as DeviceCredentials).id}`)
  // The device exists but its secret is not cached here: an operator may rotate it.
  const rotate = async (id: string): Promise<void> => { out.set(id, { secret: await api.rotateSecret(id), fresh: false }) }
  const one = (create: () => Promise<void>): Promise<void> => http.run(async () => {
    try {
      await create()
      snap.counters.provisioned++
    } catch {
      snap.counters.provisionErrors++
    }
  })
  if (options.provision === 'admin') {
    const taken: DeviceCredentials[] = []
    for (let i = 0; i < missing.length; i += MAX_BATCH) {
      const chunk = missing.slice(i, i + MAX_BATCH)
      try {
        const result = await api.createDevicesAsAdmin(chunk.map((d) => ({ id: d.id, groups: d.groups })))
        for (const c of result.created) out.set(c.id, { secret: c.secret, fresh: true })
        snap.counters.provisioned += result.created.length
        const exists = new Set(result.failed.filter((f) => f.error === 'IOT_ERR_DEVICE_EXISTS').map((f) => f.id))
        taken.push(...chunk.filter((d) => exists.has(d.id)))
        snap.counters.provisionErrors += result.failed.length - exists.size
      } catch {
        snap.counters.provisionErrors += chunk.length
      }
    }
    await Promise.all(taken.map((d) => one(async () => { await rotate(d.id) })))
  } else {
    await Promise.all(missing.map((d) => one(async () => { out.set(d.id, { secret: await api.selfRegister(d.id, d.groups), fresh: true }) })))
  }
  return out
}

async function run (start: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  const { options } = start
  const snap = emptySnapshot()
  snap.rssBaseBytes = process.memoryUsage.rss()
  const api = createHttpApi(options.url, { adminKey: options.adminKey, provisioningKey: options.provisioningKey })
  const http = new Limiter(options.httpConcurrency)
  const devices: SimDevice[] = []
  const report = (): Snapshot => {
    let connected = 0
    let gaps = 0
    const nodes: Record<string, number> = {}
    for (const d of devices) {
      gaps += d.gaps
      if (!d.connected || d.nodeId === undefined) continue
      connected++
      nodes[d.nodeId] = (nodes[d.nodeId] ?? 0) + 1
    }
    return { ...snap, devices: start.devices.length, connected, nodes, gaps, rssBytes: process.memoryUsage.rss(), at: Date.now() }
  }
  const ticker = setInterval(() => send({ type: 'snapshot', snap: report() }), SNAPSHOT_EVERY_MS)

  let stopping = false
  let rampTimer: NodeJS.Timeout | undefined
  const stopped = new Promise<void>((resolve) => {
    process.on('message', (msg: ToWorker) => {
      if (msg.type === 'expect') for (const d of devices) d.expected += msg.count
      if (msg.type === 'stop') {
        stopping = true
        if (rampTimer !== undefined) clearTimeout(rampTimer)
        resolve()
      }
    })
  })

  const secrets = await provision(api, http, options, start.devices, snap)
  send({ type: 'credentials', devices: start.devices.flatMap((d) => { const s = secrets.get(d.id); return s === undefined ? [] : [{ id: d.id, groups: d.groups, secret: s.secret }] }) })

  const settings: DeviceSettings = {
    telemetryRate: options.telemetryRate,
    qos: options.qos,
    payloadBytes: options.payloadBytes,
    jitter: options.jitter,
    keepalive: options.keepalive,
    clean: options.clean,
    backoffBase: options.backoffBase,
    backoffMax: options.backoffMax,
    refreshAfter: options.refreshAfter,
    connectTimeoutMs: 30_000,
    reportDevices: options.reportDevices
  }
  // MQTT.js (and what it loads) only for the engine that uses it: a light worker starts without it.
  const connect: Connector = options.engine === 'light' ? createLightConnector() : (await import('./engine-mqttjs.ts')).connectMqttjs
  const deps = { api, http, snap, settings, connect }
  start.devices.forEach((d, i) => {
    const s = secrets.get(d.id)
    if (s === undefined) return
    const token = d.token !== undefined && d.token.expiresAt > Date.now() + 60_000 ? d.token : undefined
    devices.push(new SimDevice(d.id, d.groups, s.secret, s.fresh, start.sources[i], deps, token))
  })

  // The ramp: device k starts at k / rate seconds (open loop: a slow connect does not slow the ramp).
  const began = performance.now()
  let next = 0
  const ramp = (): void => {
    const due = Math.min(devices.length, Math.floor((performance.now() - began) / 1000 * start.rampPerSecond) + 1)
    if (stopping) return
    for (; next < due; next++) {
      const d = devices[next] as SimDevice
      d.startTelemetry()
      d.start()
    }
    if (next < devices.length) rampTimer = setTimeout(ramp, Math.max(1, Math.min(100, 1000 / start.rampPerSecond)))
  }
  ramp()

  await stopped
  for (const d of devices) d.stopTelemetry()
  // Let uplinks in flight get their PUBACK, then pull what announced downlinks never arrived.
  const quiesceEnd = Date.now() + QUIESCE_MS
  while (devices.some((d) => d.inflightCount > 0) && Date.now() < quiesceEnd) await new Promise((resolve) => setTimeout(resolve, 50))
  const short = devices.filter((d) => d.missing > 0 && d.connected)
  await Promise.race([Promise.all(short.map((d) => d.pull())), new Promise((resolve) => setTimeout(resolve, FINAL_PULL_MS).unref())])
  snap.lostDownlinks = devices.reduce((n, d) => n + d.missing, 0)
  snap.expectedDownlinks = devices.reduce((n, d) => n + d.expected, 0)
  const final = report()
  const details = options.reportDevices ? devices.map((d) => d.detail()) : []
  const tokens = options.cacheTokens ? devices.flatMap((d) => d.currentToken === undefined ? [] : [{ id: d.id, token: d.currentToken }]) : []
  for (const d of devices) d.stop()
  clearInterval(ticker)
  // Disconnect only once the report is handed to the IPC channel, or it may be lost.
  await new Promise<void>((resolve) => send({ type: 'done', snap: final, details, tokens }, resolve))
}

process.once('message', (msg: ToWorker) => {
  if (msg.type !== 'start') return
  run(msg).then(() => {
    process.disconnect?.()
  }, (err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? err.message : String(err) }, () => process.disconnect?.())
  })
})
// The coordinator went away: nothing to report to.
process.on('disconnect', () => setTimeout(() => process.exit(0), 100).unref())
