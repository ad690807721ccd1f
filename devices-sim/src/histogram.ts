// A latency histogram that workers can send over IPC and the coordinator can merge: log-spaced buckets
// (each 4% wider than the one before, from 10 µs), plus exact count, sum, min and max.

const BASE_MS = 0.01
const GROWTH = 1.04
const LOG_GROWTH = Math.log(GROWTH)

export interface HistogramData {
  count: number
  sum: number
  min: number
  max: number
  /** bucket index → count (sparse). */
  buckets: Record<string, number>
}

export function emptyHistogram (): HistogramData {
  return { count: 0, sum: 0, min: Number.MAX_VALUE, max: 0, buckets: {} }
}

function bucketOf (ms: number): number {
  return ms <= BASE_MS ? 0 : Math.ceil(Math.log(ms / BASE_MS) / LOG_GROWTH)
}

/** The upper bound of a bucket, ms. */
function upperBound (bucket: number): number {
  return BASE_MS * GROWTH ** bucket
}

export function record (h: HistogramData, ms: number): void {
  const v = Math.max(0, ms)
  h.count++
  h.sum += v
  if (v < h.min) h.min = v
  if (v > h.max) h.max = v
  const b = String(bucketOf(v))
  h.buckets[b] = (h.buckets[b] ?? 0) + 1
}

/** Adds `from` into `into`. */
export function mergeInto (into: HistogramData, from: HistogramData): void {
  if (from.count === 0) return
  into.count += from.count
  into.sum += from.sum
  into.min = Math.min(into.min, from.min)
  into.max = Math.max(into.max, from.max)
  for (const [b, n] of Object.entries(from.buckets)) into.buckets[b] = (into.buckets[b] ?? 0) + n
}

/** The q-quantile (0..1), within 4%, never above the exact max; NaN when empty. */
export function quantile (h: HistogramData, q: number): number {
  if (h.count === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil(q * h.count))
  let seen = 0
  for (const b of Object.keys(h.buckets).map(Number).sort((a, c) => a - c)) {
    seen += h.buckets[String(b)] as number
    if (seen >= rank) return Math.max(h.min, Math.min(h.max, upperBound(b)))
  }
  return h.max
}

export interface LatencySummary {
  readonly count: number
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

const round3 = (n: number): number => Number.isFinite(n) ? Math.round(n * 1000) / 1000 : n

export function summarize (h: HistogramData): LatencySummary {
  return {
    count: h.count,
    mean: round3(h.count === 0 ? Number.NaN : h.sum / h.count),
    p50: round3(quantile(h, 0.5)),
    p90: round3(quantile(h, 0.9)),
    p99: round3(quantile(h, 0.99)),
    max: round3(h.count === 0 ? Number.NaN : h.max)
  }
}
