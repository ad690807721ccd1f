import { collectDefaultMetrics, type Registry } from 'prom-client'

// prom-client's standard Node.js and process metrics, less the ones whose scrape costs in proportion to the
// process's connections: on a broker node every MQTT connection is an open file, a libuv handle and an active
// resource, so each of these walked every connection at every scrape (a node's /metrics grew to tens of
// milliseconds of CPU at 10,000 connections). pushline_connections counts the MQTT connections instead
// (docs/operations.md, Metrics); process_max_fds stays.

/** Left out: process_open_fds lists /proc/self/fd; the others build an array of every handle or resource. */
export const PER_CONNECTION_METRICS: readonly string[] = [
  'process_open_fds',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total'
]

/** Registers the standard metrics whose scrape cost does not depend on the number of connections. */
export function collectProcessMetrics (registry: Registry): void {
  collectDefaultMetrics({ register: registry })
  for (const name of PER_CONNECTION_METRICS) registry.removeSingleMetric(name)
}
