import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'

// PUSHLINE_ASSIGNMENT_STRATEGY and PUSHLINE_NODE_WEIGHT end to end: broker processes with their own weights, and
// the node the token route names to a device.

const uid = (): string => randomUUID().slice(0, 8)

/** The node id the token route names for each request, `rounds` requests per device, and the last token. */
async function assigned (cluster: TestCluster, devices: number, rounds: number): Promise<Map<string, { nodes: string[], token: string }>> {
  const out = new Map<string, { nodes: string[], token: string }>()
  for (let i = 0; i < devices; i++) {
    const id = `as-${uid()}-${i}`
    const { secret } = await cluster.api.provision(id)
    const nodes: string[] = []
    let token = ''
    for (let r = 0; r < rounds; r++) {
      const res = await cluster.api.api('POST', `/v1/devices/${id}/token`, { secret }, {})
      assert.equal(res.status, 200, JSON.stringify(res.body))
      nodes.push(res.body.broker.nodeId as string)
      token = res.body.token as string
    }
    out.set(id, { nodes, token })
  }
  return out
}

test('weighted assignment: a node of weight 0 is never picked, and a node of weight 3 about three times as often as one of weight 1', { timeout: 180_000 }, async (t) => {
  const weights = ['0', '1', '3']
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: 500, env: { PUSHLINE_ASSIGNMENT_STRATEGY: 'weighted' }, nodeEnv: (i) => ({ PUSHLINE_NODE_WEIGHT: weights[i] as string }) })
  const [zero, one, three] = cluster.nodes.map((n) => n.nodeId) as [string, string, string]
  const picks = [...(await assigned(cluster, 200, 1)).values()].flatMap((a) => a.nodes)
  const count = (id: string): number => picks.filter((p) => p === id).length
  t.diagnostic(`weight 0: ${count(zero)}, weight 1: ${count(one)}, weight 3: ${count(three)}`)
  assert.equal(count(zero), 0, 'the node of weight 0 was picked')
  assert.equal(count(one) + count(three), 200)
  // With 200 picks at 1:3 the chance that weight 1 gets as many as weight 3 is below 1e-12.
  assert.ok(count(three) > count(one), `weight 3 picked ${count(three)} times, weight 1 ${count(one)} times`)
})

test('consistent-hash assignment: a device is named the same node on every token request, a node of weight 0 never, and it connects there', { timeout: 180_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: 500, env: { PUSHLINE_ASSIGNMENT_STRATEGY: 'consistent-hash' }, nodeEnv: (i) => ({ PUSHLINE_NODE_WEIGHT: i === 0 ? '0' : '1' }) })
  const zero = (cluster.nodes[0] as TestCluster['nodes'][number]).nodeId
  const byDevice = await assigned(cluster, 40, 3)
  for (const [id, { nodes }] of byDevice) assert.equal(new Set(nodes).size, 1, `${id} was named ${nodes.join(', ')}`)
  const picked = new Set([...byDevice.values()].map((a) => a.nodes[0]))
  assert.ok(!picked.has(zero), 'the node of weight 0 was picked')
  assert.equal(picked.size, 2, 'both nodes of weight 1 get devices')

  // The node named is one the device can connect to, and presence then names it.
  const [id, { nodes, token }] = [...byDevice.entries()][0] as [string, { nodes: string[], token: string }]
  const node = cluster.nodes.find((n) => n.nodeId === nodes[0]) as TestCluster['nodes'][number]
  await connectDevice(t, node.mqttUrl, id, token)
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.nodeId === node.nodeId), 'presence names the node')
})
