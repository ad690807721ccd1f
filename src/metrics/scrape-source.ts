import { Counter, Gauge, type Aggregator, type Registry } from 'prom-client'

// Instruments read when Prometheus scrapes, from a part that registers its reader once it exists. The instruments
// exist before the part (and in roles without it), so every process lists the same metric names.

export interface ScrapeSource<T> {
  /** Undefined until the owner has registered its reader. */
  read (): T | undefined
  /** Called by the part that owns the value, once it exists. */
  from (reader: () => T): void
}

export function scrapeSource<T> (): ScrapeSource<T> {
  let reader: (() => T) | undefined
  return {
    read: () => reader?.(),
    from (r) { reader = r }
  }
}

/**
 * A gauge set at each scrape; a reading of undefined leaves it as it was. `aggregator`: how the readings of two
 * threads of one process combine (src/metrics/merged-metrics.ts); a sum unless given.
 */
export function scrapedGauge (registry: Registry, name: string, help: string, read: () => number | undefined, aggregator?: Aggregator): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    ...(aggregator !== undefined && { aggregator }),
    collect () {
      const value = read()
      if (value !== undefined) this.set(value)
    }
  })
}

/** A counter read from a running total: each scrape adds what the total gained since the last one. */
export function scrapedTotal (registry: Registry, name: string, help: string, read: () => number | undefined): Counter {
  let last = 0
  return new Counter({
    name,
    help,
    registers: [registry],
    collect () {
      const total = read()
      if (total === undefined) return
      if (total > last) this.inc(total - last)
      last = Math.max(last, total)
    }
  })
}
