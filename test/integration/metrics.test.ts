import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'
import { test } from 'node:test'
import { createMetrics, type Metrics } from '../../src/metrics/metrics.ts'
import { createNetworkByteMeter } from '../../src/metrics/network-bytes.ts'
import { countReceipts } from '../../src/push/counted-receipt-store.ts'
import { createMemoryReceiptStore } from '../../src/stores/memory-receipt-store.ts'
import { bounded } from '../helpers/eventually.ts'

async function sample (metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)
  const values = (metric?.values ?? []) as Array<{ value: number, labels: Record<string, string | number> }>
  const matching = values.filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
  return matching.length === 0 ? undefined : matching.reduce((n, v) => n + v.value, 0)
}

test('receipt transitions are counted by the state entered, only when they move', { timeout: 120_000 }, async () => {
  const metrics = createMetrics({ nodeId: 'n1', defaultMetrics: false })
  const store = countReceipts(createMemoryReceiptStore(), metrics.push.receipts)
  await store.createPush({ pushId: 'p', target: { kind: 'devices', count: 2 }, qos: 1, ttlSeconds: 60, createdAt: 1 }, 3)
  await store.open('p', [{ deviceId: 'a', state: 'queued', id: 1 }, { deviceId: 'b', state: 'queued', id: 1 }, { deviceId: 'x', state: 'failed', reason: 'unknown device' }], 1)
  assert.equal((await store.transition('p', 'a', 'sent', 2))?.state, 'sent')
  assert.equal((await store.transition('p', 'a', 'delivered', 3))?.state, 'delivered')
  assert.equal(await store.transition('p', 'a', 'sent', 4), undefined, 'a late transition')
  assert.equal(await store.transition('p', 'x', 'delivered', 4), undefined, 'failed is final')
  // A count-only push (a broadcast): a node adds what its subscribers got, then moves PUBACKed ones to delivered.
  await store.createPush({ pushId: 'g', target: { kind: 'all' }, qos: 1, ttlSeconds: 60, createdAt: 1 }, undefined)
  await store.countDeliveries('g', ['d'], [])
  await store.countDeliveries('g', [], ['d'])
  await store.countAcks('g', ['d'])
  assert.equal(await sample(metrics, 'pushline_receipts_total', { state: 'queued' }), 2)
  assert.equal(await sample(metrics, 'pushline_receipts_total', { state: 'failed' }), 1)
  assert.equal(await sample(metrics, 'pushline_receipts_total', { state: 'sent' }), 2, 'a negative count delta counts nothing')
  assert.equal(await sample(metrics, 'pushline_receipts_total', { state: 'delivered' }), 2)
  assert.equal(await sample(metrics, 'pushline_receipts_total', { state: 'acked' }), 1)
  assert.deepEqual((await store.getPush('p'))?.counts, { queued: 1, sent: 0, delivered: 1, acked: 0, expired: 0, failed: 1 }, 'the store itself is unchanged by counting')
})

test('MQTT byte counters add the bytes of live and closed connections and never go down', { timeout: 120_000 }, async (t) => {
  const meter = createNetworkByteMeter()
  const metrics = createMetrics({ nodeId: 'n1', defaultMetrics: false })
  metrics.broker.readNetworkBytesFrom(meter.totals)
  // The server side's close of each connection, in order of accept.
  const serverClosed: Array<Promise<unknown>> = []
  const server = createServer((socket) => {
    meter.track(socket)
    serverClosed.push(once(socket, 'close'))
    socket.on('data', (d) => socket.write(Buffer.concat([d, d])))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  const port = (server.address() as { port: number }).port

  const exchange = async (bytes: number): Promise<Socket> => {
    const c = connect(port, '127.0.0.1')
    await once(c, 'connect')
    c.write(Buffer.alloc(bytes, 1))
    let got = 0
    while (got < bytes * 2) got += ((await once(c, 'data'))[0] as Buffer).length
    return c
  }
  const first = await exchange(100)
  assert.equal(await sample(metrics, 'pushline_mqtt_received_bytes_total'), 100)
  assert.equal(await sample(metrics, 'pushline_mqtt_sent_bytes_total'), 200)
  first.destroy()
  await bounded('the server to see the first connection close', serverClosed[0] as Promise<unknown>)
  const second = await exchange(10)
  t.after(() => second.destroy())
  assert.equal(await sample(metrics, 'pushline_mqtt_received_bytes_total'), 110, 'a closed connection\'s bytes stay counted')
  assert.equal(await sample(metrics, 'pushline_mqtt_sent_bytes_total'), 220)
})

test('without a broker the byte counters and gauges fed by it stay at zero', { timeout: 120_000 }, async () => {
  const metrics = createMetrics({ nodeId: 'api', defaultMetrics: false })
  assert.equal(await sample(metrics, 'pushline_mqtt_received_bytes_total'), 0)
  assert.equal(await sample(metrics, 'pushline_connections'), 0)
  assert.equal(await sample(metrics, 'pushline_presence_drift'), 0)
})
