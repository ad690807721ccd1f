import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createReadiness } from '../../src/http/readiness.ts'
import { mergedMetrics, type MetricsSnapshot } from '../../src/metrics/merged-metrics.ts'
import { createMetrics } from '../../src/metrics/metrics.ts'

// What the API thread of role all (src/api-thread/) serves for the whole process: its own readiness and metrics
// joined with the broker thread's.

test('readiness of the API thread: a check failing in the broker thread fails the process; the API thread\'s own checks stay', async () => {
  const readiness = createReadiness({
    closing: () => false,
    redis: { ping: async () => 'PONG' },
    brokerThread: async () => ({ ready: false, checks: { process: 'ok', cluster: 'draining', spool: 'ok', redis: 'ok' } })
  })
  assert.deepEqual(await readiness(), { ready: false, checks: { process: 'ok', cluster: 'draining', spool: 'ok', redis: 'ok' } })

  const apiRedisDown = createReadiness({
    closing: () => false,
    redis: { ping: async () => { throw new Error('Connection is closed.') } },
    brokerThread: async () => ({ ready: true, checks: { process: 'ok', cluster: 'ok', redis: 'ok' } })
  })
  assert.deepEqual(await apiRedisDown(), { ready: false, checks: { process: 'ok', cluster: 'ok', redis: 'Connection is closed.' } })

  const silent = createReadiness({ closing: () => false, brokerThread: async () => { throw new Error('the broker thread did not answer within 5000 ms') } })
  assert.deepEqual(await silent(), { ready: false, checks: { process: 'ok', brokerThread: 'the broker thread did not answer within 5000 ms' } })
})

test('metrics of the API thread: each family once, counters summed over both threads, the receipts stream connected only if both are', async () => {
  const broker = createMetrics({ nodeId: 'n1' })
  const api = createMetrics({ nodeId: 'n1', defaultMetrics: false })
  broker.push.receipts.inc({ state: 'sent' }, 2)
  api.push.receipts.inc({ state: 'queued' }, 3)
  api.push.receipts.inc({ state: 'sent' }, 1)
  broker.push.readReceiptStreamFrom(() => ({ unshippedRecords: 4, unshippedBytes: 40, kafkaConnected: true }))
  api.push.readReceiptStreamFrom(() => ({ unshippedRecords: 5, unshippedBytes: 50, kafkaConnected: false }))
  const text = await mergedMetrics(api.registry, async () => await broker.registry.getMetricsAsJSON() as MetricsSnapshot).metrics()

  const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1])
  assert.equal(new Set(families).size, families.length, 'no family twice')
  assert.ok(families.includes('process_cpu_seconds_total'), 'the broker thread\'s process metrics')
  assert.match(text, /^pushline_receipts_total\{state="sent",node_id="n1"\} 3$/m)
  assert.match(text, /^pushline_receipts_total\{state="queued",node_id="n1"\} 3$/m)
  assert.match(text, /^pushline_receipt_records_unshipped\{node_id="n1"\} 9$/m)
  assert.match(text, /^pushline_receipt_stream_kafka_connected\{node_id="n1"\} 0$/m)
})
