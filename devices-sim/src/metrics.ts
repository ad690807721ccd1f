// What one worker measured so far (cumulative), in a shape that crosses IPC as JSON and merges by addition.

import { LatencyHistogram } from './histogram.ts'

export const COUNTERS = [
  'provisioned', 'provisionErrors', 'tokens', 'tokenErrors', 'tokenRefreshes',
  'connectAttempts', 'connects', 'connectErrors', 'connackRefusals', 'disconnects', 'reconnects',
  'uplinksSent', 'uplinksAcked', 'uplinksUnconfirmed', 'uplinkErrors',
  'downlinks', 'downlinksPulled', 'duplicates', 'acksSent', 'pulls', 'pullErrors',
  'broadcasts', 'broadcastsCaughtUp', 'badDownlinks', 'subscribeRefusals'
] as const

export type Counter = typeof COUNTERS[number]

export const HISTOGRAMS = ['connect', 'uplink', 'downlink', 'broadcast', 'reconnect'] as const
export type HistogramName = typeof HISTOGRAMS[number]

export interface BroadcastTally {
  received: number
  /** Latest receipt minus sentAt, ms. */
  maxMs: number
}

export interface Snapshot {
  devices: number
  connected: number
  counters: Record<Counter, number>
  /** Live in a worker; in a snapshot received over IPC, their JSON form until mergeSnapshots reads them. */
  histograms: Record<HistogramName, LatencyHistogram>
  /** nodeId → devices connected to it now. */
  nodes: Record<string, number>
  /** Why connects and token requests failed ("connect: ECONNREFUSED", "token: 429"…) → how often. */
  errorReasons: Record<string, number>
  /** pushId → receipts of that broadcast. */
  broadcasts: Record<string, BroadcastTally>
  /** Targeted downlinks the coordinator announced, per device, summed. */
  expectedDownlinks: number
  /** Expected downlinks never received (after a final pull). Filled at the end. */
  lostDownlinks: number
  /** Id holes between received ids, summed over devices. */
  gaps: number
  rssBytes: number
  /** Resident memory of the worker processes before any device existed. */
  rssBaseBytes: number
  /** Time of the snapshot, epoch ms. */
  at: number
}

export function emptySnapshot (): Snapshot {
  return {
    devices: 0,
    connected: 0,
    counters: Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>,
    histograms: Object.fromEntries(HISTOGRAMS.map((h) => [h, new LatencyHistogram()])) as Record<HistogramName, LatencyHistogram>,
    nodes: {},
    errorReasons: {},
    broadcasts: {},
    expectedDownlinks: 0,
    lostDownlinks: 0,
    gaps: 0,
    rssBytes: 0,
    rssBaseBytes: 0,
    at: 0
  }
}

/** One fleet-wide snapshot from the workers' latest ones (sums; rss is the sum of the worker processes). */
export function mergeSnapshots (snaps: readonly Snapshot[]): Snapshot {
  const out = emptySnapshot()
  for (const s of snaps) {
    out.devices += s.devices
    out.connected += s.connected
    for (const c of COUNTERS) out.counters[c] += s.counters[c] ?? 0
    for (const h of HISTOGRAMS) out.histograms[h].add(s.histograms[h])
    for (const [node, n] of Object.entries(s.nodes)) out.nodes[node] = (out.nodes[node] ?? 0) + n
    for (const [why, k] of Object.entries(s.errorReasons ?? {})) out.errorReasons[why] = (out.errorReasons[why] ?? 0) + k
    for (const [id, b] of Object.entries(s.broadcasts)) {
      const t = out.broadcasts[id] ?? { received: 0, maxMs: 0 }
      t.received += b.received
      t.maxMs = Math.max(t.maxMs, b.maxMs)
      out.broadcasts[id] = t
    }
    out.expectedDownlinks += s.expectedDownlinks
    out.lostDownlinks += s.lostDownlinks
    out.gaps += s.gaps
    out.rssBytes += s.rssBytes
    out.rssBaseBytes += s.rssBaseBytes
    out.at = Math.max(out.at, s.at)
  }
  return out
}
