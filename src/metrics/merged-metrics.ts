import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client'

// One process's /metrics when two threads of it keep a registry each (role all with its API thread,
// src/api-thread/): both register every pushline_* family (src/metrics/metrics.ts), so the families are merged
// into one each, the samples of equal labels combined by the metric's aggregator (a sum unless it names another).

/** What GET /metrics serves: a registry, or a merge of two. */
export interface MetricsExposition {
  readonly contentType: string
  metrics (): Promise<string>
}

/** A registry's samples as data, which can cross to another thread. */
export type MetricsSnapshot = Array<MetricObjectWithValues<MetricValue<string>>>

export function mergedMetrics (own: Registry, other: () => Promise<MetricsSnapshot>): MetricsExposition {
  return {
    contentType: own.contentType,
    async metrics () {
      const [mine, theirs] = await Promise.all([own.getMetricsAsJSON(), other()])
      return await AggregatorRegistry.aggregate([mine as MetricsSnapshot, theirs]).metrics()
    }
  }
}
