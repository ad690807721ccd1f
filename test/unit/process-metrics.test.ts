import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { createMetrics } from '../../src/metrics/metrics.ts'
import { PER_CONNECTION_METRICS } from '../../src/metrics/process-metrics.ts'

// A broker node's /metrics must cost the same at 10 or 10,000 connections: no standard metric may walk the
// process's handles, resources or open files at a scrape.

/** Counts calls of `obj[name]` (calling through) until the returned restore runs. */
function countCalls (obj: object, name: string, counted: (args: unknown[]) => boolean = () => true): { calls: () => number, restore: () => void } {
  const record = obj as Record<string, unknown>
  const original = record[name]
  let calls = 0
  if (typeof original !== 'function') return { calls: () => calls, restore: () => {} }
  record[name] = function (this: unknown, ...args: unknown[]) {
    if (counted(args)) calls++
    return (original as (...a: unknown[]) => unknown).apply(this, args)
  }
  return { calls: () => calls, restore: () => { record[name] = original } }
}

test('the standard metrics are exported without those whose scrape walks every connection', { timeout: 10_000 }, async () => {
  const { registry } = createMetrics({ nodeId: 'n1' })
  const handles = countCalls(process, '_getActiveHandles')
  const resources = countCalls(process, 'getActiveResourcesInfo')
  const fdList = countCalls(fs, 'readdirSync', ([path]) => String(path).startsWith('/proc/self/fd'))
  let text: string
  try {
    text = await registry.metrics()
  } finally {
    for (const spy of [handles, resources, fdList]) spy.restore()
  }
  assert.equal(handles.calls(), 0, 'no walk of the active handles')
  assert.equal(resources.calls(), 0, 'no walk of the active resources')
  assert.equal(fdList.calls(), 0, 'no listing of /proc/self/fd')
  for (const name of PER_CONNECTION_METRICS) assert.doesNotMatch(text, new RegExp(`^${name}[{ ]`, 'm'), name)
  // The documented ones (docs/operations.md, Metrics) are still there, with the node id.
  for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes', 'process_cpu_seconds_total', 'process_max_fds', 'nodejs_active_requests_total', 'pushline_connections']) {
    assert.match(text, new RegExp(`^${name}\\{[^}]*node_id="n1"[^}]*\\} `, 'm'), name)
  }
  assert.match(text, /^# TYPE nodejs_gc_duration_seconds histogram$/m)
})
