// A latency histogram that workers send over IPC and the coordinator merges: HdrHistogram (hdr-histogram-js) in
// microseconds with two significant digits (quantiles within 1%), plus the exact count, sum, min and max. Over IPC
// (JSON) it travels as HdrHistogram's compressed base64 form.

import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js'

const US_PER_MS = 1000

/** The JSON form: what a worker's snapshot carries to the coordinator. */
export interface HistogramJSON {
  readonly count: number
  readonly sum: number
  readonly min: number
  readonly max: number
  /** The distribution, HdrHistogram's compressed base64 encoding ('' when empty). */
  readonly hdr: string
}

function newDistribution (): Histogram {
  return build({ numberOfSignificantValueDigits: 2, lowestDiscernibleValue: 1, highestTrackableValue: 2, autoResize: true })
}

export class LatencyHistogram {
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = 0
  readonly #distribution = newDistribution()
  /** The encoded form and the count it was made at: a worker sends every histogram every second, most unchanged. */
  #encoded: { count: number, hdr: string } | undefined

  /** A histogram as another process sent it (its JSON form), or a copy of a live one. */
  static from (data: LatencyHistogram | HistogramJSON): LatencyHistogram {
    const h = new LatencyHistogram()
    h.add(data)
    return h
  }

  record (ms: number): void {
    const v = Math.max(0, ms)
    this.count++
    this.sum += v
    if (v < this.min) this.min = v
    if (v > this.max) this.max = v
    this.#distribution.recordValue(Math.round(v * US_PER_MS))
  }

  /** Adds `other` (live, or the JSON form a worker sent) into this one. */
  add (other: LatencyHistogram | HistogramJSON): void {
    if (other.count === 0) return
    this.count += other.count
    this.sum += other.sum
    this.min = Math.min(this.min, other.min)
    this.max = Math.max(this.max, other.max)
    this.#distribution.add(other instanceof LatencyHistogram ? other.#distribution : decodeFromCompressedBase64(other.hdr))
  }

  /** The q-quantile (0..1) in ms, within 1%, never outside the exact min and max; NaN when empty. */
  quantile (q: number): number {
    if (this.count === 0) return Number.NaN
    const v = this.#distribution.getValueAtPercentile(q * 100) / US_PER_MS
    return Math.max(this.min, Math.min(this.max, v))
  }

  toJSON (): HistogramJSON {
    // The count changes with every value recorded or added, so an equal count means the same distribution.
    if (this.#encoded?.count !== this.count) this.#encoded = { count: this.count, hdr: this.count === 0 ? '' : encodeIntoCompressedBase64(this.#distribution) }
    return { count: this.count, sum: this.sum, min: this.min, max: this.max, hdr: this.#encoded.hdr }
  }
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

export function summarize (h: LatencyHistogram): LatencySummary {
  return {
    count: h.count,
    mean: round3(h.count === 0 ? Number.NaN : h.sum / h.count),
    p50: round3(h.quantile(0.5)),
    p90: round3(h.quantile(0.9)),
    p99: round3(h.quantile(0.99)),
    max: round3(h.count === 0 ? Number.NaN : h.max)
  }
}
