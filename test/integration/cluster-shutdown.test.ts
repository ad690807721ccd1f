import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { bounded, eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'

// A broker node stopped with SIGTERM in cluster mode cleans up after itself before it exits: its devices leave
// presence and it leaves the member list, without waiting for a survivor to notice its lease ran out.

test('a broker node stopped with SIGTERM removes its devices from presence and itself from the nodes before it exits', { timeout: 120_000 }, async (t) => {
  // Heartbeats every 20 s: its lease outlives this test, so only the node's own cleanup can explain what follows.
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: 20_000 })
  const [leaving, staying] = cluster.nodes as [TestCluster['nodes'][number], TestCluster['nodes'][number]]
  const ids = ['sd-a', 'sd-b', 'sd-c']
  for (const id of ids) await connectDevice(t, leaving.mqttUrl, id, (await cluster.api.provision(id)).token)
  const { token } = await cluster.api.provision('sd-stays')
  await connectDevice(t, staying.mqttUrl, 'sd-stays', token)
  assert.ok(await eventually(async () => (await cluster.stats()).online === 4), 'all four online')

  leaving.child.kill('SIGTERM')
  assert.equal(await bounded('the node to exit', leaving.exited), 0, 'a graceful stop')
  // Already done when the process has exited: no polling.
  for (const id of ids) assert.equal((await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.online, false, id)
  const stayer = (await cluster.api.api('GET', '/v1/admin/devices/sd-stays/presence')).body
  assert.deepEqual([stayer.online, stayer.nodeId], [true, staying.nodeId])
  const stats = await cluster.stats()
  assert.equal(stats.online, 1)
  assert.deepEqual((await cluster.api.api('GET', '/v1/admin/nodes')).body.nodes.map((n: { nodeId: string }) => n.nodeId), [staying.nodeId])
})
