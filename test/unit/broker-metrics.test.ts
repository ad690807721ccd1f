import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { registerBrokerMetrics } from '../../src/broker/broker-metrics.ts'

async function uplinksTotal (registry: Registry, kind: string, qos: string): Promise<number | undefined> {
  const metric = await registry.getSingleMetric('pushline_uplinks_total')?.get()
  return metric?.values.find((v) => v.labels.kind === kind && String(v.labels.qos) === qos)?.value
}

test('uplinks counted on the receive path show in pushline_uplinks_total by kind and QoS, once each, on every read', { timeout: 10_000 }, async () => {
  const registry = new Registry()
  const metrics = registerBrokerMetrics(registry)
  for (let i = 0; i < 3; i++) metrics.countUplink('telemetry', 1)
  metrics.countUplink('events', 0)
  assert.equal(await uplinksTotal(registry, 'telemetry', '1'), 3)
  assert.equal(await uplinksTotal(registry, 'events', '0'), 1)
  assert.equal(await uplinksTotal(registry, 'telemetry', '0'), undefined, 'a kind and QoS never counted has no series')
  // A second read adds nothing; later uplinks add to the total.
  assert.equal(await uplinksTotal(registry, 'telemetry', '1'), 3)
  metrics.countUplink('telemetry', 1)
  assert.match(await registry.metrics(), /pushline_uplinks_total\{kind="telemetry",qos="1"\} 4\n/)
  assert.match(await registry.metrics(), /pushline_uplinks_total\{kind="events",qos="0"\} 1\n/)
})
