import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { Redis } from 'ioredis'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { startTestCluster, type TestCluster, type TestNode } from '../helpers/cluster.ts'
import { connectRedis, redisUrl } from '../helpers/services.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'

// A presence connect write that fails (under load: a command timeout, whether or not Redis ran it) is repeated until
// Redis answers, instead of closing the device (docs/cluster.md, Presence). The real Redis of scripts/services.sh
// holds every write (CLIENT PAUSE WRITE) until the node has logged the write as failed, then runs it.

const HB = 500

interface Device {
  readonly client: MqttClient
  connects: () => number
  closes: () => number
}

/** A device that reconnects by itself when closed (unless told not to), so a close shows as a second connect. */
function device (t: TestContext, node: TestNode, id: string, token: string, reconnectPeriod = 200): Device {
  const client = mqtt.connect(node.mqttUrl, { clientId: id, username: id, password: token, reconnectPeriod, connectTimeout: 60_000, protocolVersion: 4 })
  t.after(() => client.end(true))
  let connects = 0
  let closes = 0
  client.on('connect', () => { connects++ })
  client.on('close', () => { closes++ })
  return { client, connects: () => connects, closes: () => closes }
}

async function pauseWrites (t: TestContext): Promise<Redis> {
  const control = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  // Long enough never to end by itself before the test unpauses; ended here whatever happens.
  t.after(async () => { await control.call('CLIENT', 'UNPAUSE'); await control.quit() })
  await control.call('CLIENT', 'PAUSE', '120000', 'WRITE')
  return control
}

const presenceFailures = (node: TestNode): number => node.stdout().split('\n').filter((l) => l.includes('"what":"presence connect"')).length

/** Stats and presence agree with the one live connection, on `node`. */
async function exact (cluster: TestCluster, id: string, node: TestNode): Promise<boolean> {
  const stats = await cluster.stats()
  const p = (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body
  return stats.online === 1 && stats.nodes.reduce((sum, n) => sum + n.sessions, 0) === 1 && stats.nodes.every((n) => n.drift === 0) && p.online === true && p.nodeId === node.nodeId
}

/**
 * Waits for a full reconciliation pass on `node` after this point: an entry in its index with no connection makes
 * its counts differ, and the pass that removes it has checked every live connection.
 */
async function reconciled (t: TestContext, cluster: TestCluster, node: TestNode, tag: string): Promise<void> {
  const presence = createRedisPresenceStore({ redis: connectRedis(t), prefix: cluster.prefix })
  const ghost = `ghost-${tag}`
  await presence.connect(ghost, node.nodeId, Date.now())
  await waitUntil('a reconciliation pass that removes the ghost entry', async () => (await presence.get(ghost)) === undefined, 60_000)
}

test('a connect write that timed out (Redis ran it later) is repeated and adopted: the device stays connected and presence is exact', { timeout: 180_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: HB })
  const node = cluster.nodes[0] as TestNode
  const id = `held-${Date.now().toString(36)}`
  const { token } = await cluster.api.provision(id)

  const control = await pauseWrites(t)
  const d = device(t, node, id, token)
  await waitUntil('the node to log its presence write as failed', () => presenceFailures(node) >= 1, 60_000)
  await control.call('CLIENT', 'UNPAUSE')

  await waitUntil('the device connected', () => d.connects() >= 1, 60_000)
  assert.ok(await eventually(async () => await exact(cluster, id, node), 60_000), `presence never matched the live connection: ${JSON.stringify(await cluster.stats())}`)
  await reconciled(t, cluster, node, id)
  // Marker on the device's own connection: had a pass closed it, the close went out before this SUBACK could.
  await bounded('subscribe after the reconciliation', d.client.subscribeAsync(`devices/${id}/down`, { qos: 1 }))
  assert.equal(d.closes(), 0, 'the connection was never closed')
  assert.equal(d.connects(), 1, 'one connection, recorded')
  assert.ok(await exact(cluster, id, node))
  assert.ok(!node.stdout().includes('closed-unrecorded'))
})

test('a newer connection on another node while the first one\'s write is held: the newer one keeps the entry and stays, the first is closed', { timeout: 180_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: HB })
  const [a, b] = cluster.nodes as [TestNode, TestNode]
  const id = `raced-${Date.now().toString(36)}`
  const { token } = await cluster.api.provision(id)

  const control = await pauseWrites(t)
  const first = device(t, a, id, token, 0)
  await waitUntil('node A to log its presence write as failed', () => presenceFailures(a) >= 1, 60_000)
  const newer = device(t, b, id, token)
  await waitUntil('node B to log its presence write as failed', () => presenceFailures(b) >= 1, 60_000)
  await control.call('CLIENT', 'UNPAUSE')

  await waitUntil('the first connection closed', () => first.closes() >= 1, 60_000)
  assert.ok(await eventually(async () => newer.connects() >= 1 && await exact(cluster, id, b), 60_000), `presence never named the newer connection: ${JSON.stringify(await cluster.stats())}`)
  await reconciled(t, cluster, a, `a-${id}`)
  await reconciled(t, cluster, b, `b-${id}`)
  await bounded('subscribe after both reconciliations', newer.client.subscribeAsync(`devices/${id}/down`, { qos: 1 }))
  assert.equal(newer.closes(), 0, 'the newer connection was never closed')
  assert.equal(newer.connects(), 1)
  assert.ok(await exact(cluster, id, b))
})
