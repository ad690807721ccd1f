// The run's results: the JSON report, the threshold checks that decide the exit code, the human table at the
// end and the progress line during the run.

import type { ActionResult } from './actions.ts'
import type { DeviceDetail } from './device.ts'
import { summarize, type LatencySummary } from './histogram.ts'
import { HISTOGRAMS, type HistogramName, type Snapshot } from './metrics.ts'
import type { SimOptions, Thresholds } from './options.ts'
import { toRanges } from './payload.ts'

export interface ThresholdCheck {
  readonly name: keyof Thresholds
  readonly limit: number
  readonly value: number | null
  readonly ok: boolean
}

export interface Report {
  readonly scenario: string | null
  readonly startedAt: string
  readonly endedAt: string
  readonly options: Record<string, unknown>
  readonly devices: { requested: number, provisioned: number, connectedAtEnd: number, workers: number }
  readonly connectPhase: { ms: number, connected: number, connectsPerSecond: number }
  readonly runMs: number
  readonly counters: Snapshot['counters']
  readonly latencyMs: Record<HistogramName, LatencySummary>
  readonly uplinks: { sent: number, acked: number, unconfirmed: number, errors: number, ackedPerSecond: number }
  readonly downlinks: { expected: number, received: number, pulled: number, lost: number, duplicates: number, gaps: number }
  readonly actions: readonly ActionResult[]
  readonly nodesAtEnd: Record<string, number>
  readonly errorReasons: Record<string, number>
  readonly memory: { rssBytes: number, rssBaseBytes: number, rssPerDeviceBytes: number | null }
  readonly errorRate: number
  readonly thresholds: readonly ThresholdCheck[]
  readonly ok: boolean
  readonly deviceDetail?: ReadonlyArray<Omit<DeviceDetail, 'uplinksAcked'> & { uplinksAcked: Array<[number, number]> }>
}

export interface ReportInput {
  readonly options: SimOptions
  readonly scenario: string | null
  readonly startedAt: number
  readonly connectPhaseMs: number
  readonly connectedAfterPhase: number
  readonly runMs: number
  readonly provisioned: number
  readonly final: Snapshot
  readonly actions: readonly ActionResult[]
  readonly details: readonly DeviceDetail[]
}

/** Failed operations over attempted ones: provisioning, tokens, connects, uplinks and pulls. */
export function errorRate (s: Snapshot): number {
  const c = s.counters
  const failed = c.provisionErrors + c.tokenErrors + c.connectErrors + c.connackRefusals + c.uplinkErrors + c.pullErrors
  const attempted = c.provisioned + c.provisionErrors + c.tokens + c.tokenErrors + c.connectAttempts + c.uplinksSent + c.pulls
  return attempted === 0 ? 0 : failed / attempted
}

/** Each configured threshold against its figure; a missing figure (nothing measured) fails the check. */
export function checkThresholds (t: Thresholds, s: Snapshot, actions: readonly ActionResult[], requested: number): ThresholdCheck[] {
  const out: ThresholdCheck[] = []
  const max = (name: keyof Thresholds, value: number | null): void => {
    const limit = t[name]
    if (limit !== undefined) out.push({ name, limit, value, ok: value !== null && Number.isFinite(value) && value <= limit })
  }
  max('maxErrorRate', errorRate(s))
  max('maxLostDownlinks', s.lostDownlinks)
  max('maxLostUplinks', s.counters.uplinksUnconfirmed + s.counters.uplinkErrors)
  max('maxDuplicateDownlinks', s.counters.duplicates)
  max('maxUplinkP99Ms', s.histograms.uplink.count === 0 ? null : s.histograms.uplink.quantile(0.99))
  max('maxDownlinkP99Ms', s.histograms.downlink.count === 0 ? null : s.histograms.downlink.quantile(0.99))
  const broadcasts = actions.filter((a) => a.do === 'broadcast').flatMap((a) => a.pushes as Array<{ allReceivedMs: number | null }>)
  max('maxBroadcastMs', broadcasts.length === 0 || broadcasts.some((b) => b.allReceivedMs === null) ? null : Math.max(...broadcasts.map((b) => b.allReceivedMs as number)))
  const kills = actions.filter((a) => a.do === 'kill-node')
  max('maxReconnectMs', kills.length === 0 || kills.some((k) => k.allBackMs === null) ? null : Math.max(...kills.map((k) => k.allBackMs as number)))
  if (t.minConnectedRatio !== undefined) {
    const ratio = s.connected / requested
    out.push({ name: 'minConnectedRatio', limit: t.minConnectedRatio, value: ratio, ok: ratio >= t.minConnectedRatio })
  }
  return out
}

export function buildReport (r: ReportInput): Report {
  const s = r.final
  const c = s.counters
  const thresholds = checkThresholds(r.options.thresholds, s, r.actions, r.options.devices)
  const { adminKey, provisioningKey, ...shown } = r.options
  return {
    scenario: r.scenario,
    startedAt: new Date(r.startedAt).toISOString(),
    endedAt: new Date().toISOString(),
    options: { ...shown, adminKey: adminKey === undefined ? null : '(set)', provisioningKey: provisioningKey === undefined ? null : '(set)' },
    devices: { requested: r.options.devices, provisioned: r.provisioned, connectedAtEnd: s.connected, workers: r.options.workers },
    connectPhase: { ms: Math.round(r.connectPhaseMs), connected: r.connectedAfterPhase, connectsPerSecond: Math.round(r.connectedAfterPhase / (r.connectPhaseMs / 1000)) },
    runMs: Math.round(r.runMs),
    counters: c,
    latencyMs: Object.fromEntries(HISTOGRAMS.map((h) => [h, summarize(s.histograms[h])])) as Record<HistogramName, LatencySummary>,
    uplinks: { sent: c.uplinksSent, acked: c.uplinksAcked, unconfirmed: c.uplinksUnconfirmed, errors: c.uplinkErrors, ackedPerSecond: Math.round(c.uplinksAcked / (r.runMs / 1000)) },
    downlinks: { expected: s.expectedDownlinks, received: c.downlinks, pulled: c.downlinksPulled, lost: s.lostDownlinks, duplicates: c.duplicates, gaps: s.gaps },
    actions: r.actions,
    nodesAtEnd: s.nodes,
    errorReasons: s.errorReasons,
    memory: { rssBytes: s.rssBytes, rssBaseBytes: s.rssBaseBytes, rssPerDeviceBytes: s.devices === 0 || s.connected === 0 ? null : Math.round((s.rssBytes - s.rssBaseBytes) / s.connected) },
    errorRate: errorRate(s),
    thresholds,
    // A run in which no device ever connected measured nothing: it fails whatever the thresholds say.
    ok: thresholds.every((t) => t.ok) && r.actions.every((a) => a.ok) && (r.options.devices === 0 || c.connects > 0),
    ...(r.options.reportDevices && { deviceDetail: r.details.map((d) => ({ ...d, uplinksAcked: toRanges(d.uplinksAcked) })) })
  }
}

const n = (v: number | null | undefined, digits = 0): string => v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

function table (rows: ReadonlyArray<readonly string[]>): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map((row) => row.map((cell, i) => i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)).join('  ')).join('\n')
}

export function formatReport (r: Report): string {
  const lat = (name: HistogramName): string[] => {
    const l = r.latencyMs[name]
    return [`${name} latency ms (n=${n(l.count)})`, `p50 ${n(l.p50, 2)}`, `p90 ${n(l.p90, 2)}`, `p99 ${n(l.p99, 2)}`, `max ${n(l.max, 2)}`]
  }
  const rows: string[][] = [
    ['devices', `requested ${n(r.devices.requested)}`, `provisioned ${n(r.devices.provisioned)}`, `connected at end ${n(r.devices.connectedAtEnd)}`, `workers ${r.devices.workers}`],
    ['connect phase', `${n(r.connectPhase.ms)} ms`, `${n(r.connectPhase.connected)} connected`, `${n(r.connectPhase.connectsPerSecond)} connects/s`, ''],
    lat('connect'),
    ['uplinks', `sent ${n(r.uplinks.sent)}`, `acked ${n(r.uplinks.acked)}`, `unconfirmed ${n(r.uplinks.unconfirmed)}`, `${n(r.uplinks.ackedPerSecond)} acked/s`],
    lat('uplink'),
    ['downlinks', `received ${n(r.downlinks.received)}`, `pulled ${n(r.downlinks.pulled)}`, `lost ${n(r.downlinks.lost)}`, `duplicates ${n(r.downlinks.duplicates)}`],
    lat('downlink'),
    ['broadcasts', `received ${n(r.counters.broadcasts)}`, `of them caught up ${n(r.counters.broadcastsCaughtUp)} (sent before the device first connected: not in the latency)`, '', ''],
    lat('broadcast'),
    ['reconnects', `${n(r.counters.reconnects)}`, `disconnects ${n(r.counters.disconnects)}`, `token refreshes ${n(r.counters.tokenRefreshes)}`, ''],
    lat('reconnect'),
    ['errors', `rate ${n(r.errorRate * 100, 3)} %`, `connect ${n(r.counters.connectErrors)}`, `refused ${n(r.counters.connackRefusals)}`, `token ${n(r.counters.tokenErrors)}`],
    ['memory', `rss ${n(r.memory.rssBytes / 1048576, 1)} MiB`, `per device ${n(r.memory.rssPerDeviceBytes)} B`, '', '']
  ]
  const lines = [table(rows)]
  const reasons = Object.entries(r.errorReasons).sort((a, b) => b[1] - a[1])
  if (reasons.length > 0) lines.push(`error reasons: ${reasons.map(([why, k]) => `${why} × ${n(k)}`).join(', ')}`)
  for (const a of r.actions) lines.push(`action ${a.do}: ${a.ok ? 'ok' : 'FAILED'} ${JSON.stringify(Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'do' && k !== 'ok')))}`)
  for (const t of r.thresholds) lines.push(`threshold ${t.name} ${t.limit}: ${t.value === null ? 'no figure' : n(t.value, 4)} ${t.ok ? 'ok' : 'EXCEEDED'}`)
  lines.push(r.ok ? 'result: ok' : 'result: FAILED')
  return lines.join('\n')
}

/** One line: elapsed, connected, rates since the last line, errors, latency. */
export function progressLine (elapsedMs: number, s: Snapshot, prev: Snapshot | undefined, fleet: number): string {
  const dt = prev === undefined ? elapsedMs / 1000 : Math.max(0.001, (s.at - prev.at) / 1000)
  const rate = (get: (x: Snapshot) => number): string => n((get(s) - (prev === undefined ? 0 : get(prev))) / dt)
  const c = s.counters
  const errors = c.connectErrors + c.connackRefusals + c.tokenErrors + c.provisionErrors + c.uplinkErrors
  const provisioning = c.provisioned + c.provisionErrors > 0 && s.connected === 0 && c.connectAttempts === 0 ? `  provisioned ${n(c.provisioned)}` : ''
  return `${n(elapsedMs / 1000, 0)}s${provisioning}  tokens ${n(c.tokens)}  connected ${n(s.connected)}/${n(fleet)}  connects/s ${rate((x) => x.counters.connects)}` +
    `  up/s ${rate((x) => x.counters.uplinksAcked)} p99 ${n(s.histograms.uplink.quantile(0.99), 1)} ms` +
    `  down/s ${rate((x) => x.counters.downlinks + x.counters.broadcasts)} p99 ${n(s.histograms.downlink.quantile(0.99), 1)} ms` +
    `  errors ${n(errors)}  rss ${n(s.rssBytes / 1048576)} MiB`
}
