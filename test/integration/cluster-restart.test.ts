import assert from 'node:assert/strict'
import { test } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { provisionMany, startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { connectRedis } from '../helpers/services.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'

// Every node of a cluster SIGKILLed and started again with its node id and MQTT port, the devices reconnecting on
// their own with the tokens they hold (docs/cluster.md, Restarted nodes).

const HB = 500
const DEVICES = 300
/**
 * Entries the first node's previous process left for devices that never come back, written straight into presence:
 * more than a Lua call can take at once (8,000), as on a node of a large fleet, without connecting that many clients.
 */
const LEFT_BEHIND = 9000

interface Device {
  readonly id: string
  readonly nodeId: string
  readonly client: MqttClient
  /** The current connection's SUBACK arrived. */
  subscribed: boolean
  /** Closes of an established connection (not refused reconnect attempts). */
  drops: number
}

/** A device as firmware runs it: reconnects by itself and subscribes on every connection. */
function device (id: string, token: string, node: TestCluster['nodes'][number]): Device {
  const client = mqtt.connect(node.mqttUrl, { clientId: id, username: id, password: token, reconnectPeriod: 100, connectTimeout: 10_000, protocolVersion: 4, clean: true })
  const d: Device = { id, nodeId: node.nodeId, client, subscribed: false, drops: 0 }
  let open = false
  client.on('connect', () => {
    open = true
    client.subscribe(`devices/${id}/down`, { qos: 1 }, (err) => { if (err == null && client.connected) d.subscribed = true })
  })
  client.on('close', () => {
    if (open) d.drops++
    open = false
    d.subscribed = false
  })
  client.on('error', () => {})
  return d
}

/** Presence is exact and names each device's node, every device connected and subscribed. */
async function allOnline (cluster: TestCluster, devices: Device[]): Promise<boolean> {
  if (devices.some((d) => !d.client.connected || !d.subscribed)) return false
  const stats = await cluster.stats()
  if (stats.online !== devices.length || stats.nodes.length !== cluster.nodes.length) return false
  if (stats.nodes.reduce((sum, n) => sum + n.sessions, 0) !== devices.length || stats.nodes.some((n) => n.drift !== 0)) return false
  const listed = new Map<string, string>()
  let after: string | undefined
  do {
    const page = (await cluster.api.api('GET', `/v1/admin/devices?online=true&limit=1000${after === undefined ? '' : `&after=${after}`}`)).body as { devices: Array<{ id: string, nodeId: string }>, next?: string | null }
    for (const e of page.devices) listed.set(e.id, e.nodeId)
    after = page.next ?? undefined
  } while (after !== undefined)
  return listed.size === devices.length && devices.every((d) => listed.get(d.id) === d.nodeId)
}

test(`${DEVICES} devices on 2 nodes, both SIGKILLed and started again with the same ids and ports: the devices that come back reconnect and stay subscribed, presence exact and without the ones that did not`, { timeout: 240_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: HB })
  const tokens = await provisionMany(cluster, DEVICES, 'restart')
  const devices = [...tokens].map(([id, token], i) => device(id, token, cluster.nodes[i % 2] as TestCluster['nodes'][number]))
  t.after(async () => { await Promise.all(devices.map(async (d) => await d.client.endAsync(true))) })
  await waitUntil('every device online, presence exact', () => allOnline(cluster, devices), 60_000, 100)

  for (const n of cluster.nodes) n.child.kill('SIGKILL')
  await bounded('both nodes to exit', Promise.all(cluster.nodes.map(async (n) => await n.exited)))
  await waitUntil('every device to see its connection drop', () => devices.every((d) => d.drops === 1), 60_000, 50)
  // Both records expire (1.5 heartbeat periods) while no node runs: no survivor sweeps the old entries.
  await waitUntil('both node records to expire', async () => (await cluster.stats()).nodes.length === 0, 60_000, 50)
  const before = await cluster.stats()
  assert.equal(before.online, DEVICES, 'the killed nodes\' entries are still there: nobody swept them')
  // Every third device stays away: the restarted nodes must drop what their previous incarnations recorded for it.
  const gone = devices.filter((_, i) => i % 3 === 0)
  await Promise.all(gone.map(async (d) => await d.client.endAsync(true)))
  const back = devices.filter((_, i) => i % 3 !== 0)
  const presence = createRedisPresenceStore({ redis: connectRedis(t), prefix: cluster.prefix })
  const first = cluster.nodes[0] as TestCluster['nodes'][number]
  for (let i = 0; i < LEFT_BEHIND; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, LEFT_BEHIND - i) }, async (_, j) => await presence.connect(`left-${i + j}`, first.nodeId, Date.now())))
  }
  assert.equal((await cluster.stats()).online, DEVICES + LEFT_BEHIND)

  await Promise.all([0, 1].map(async (i) => await cluster.restartNode(i)))
  assert.equal(await eventually(() => allOnline(cluster, back), 120_000, 200), true,
    `connected ${back.filter((d) => d.client.connected).length}, subscribed ${back.filter((d) => d.subscribed).length}, drops ${back.reduce((s, d) => s + d.drops, 0)}; stats ${JSON.stringify(await cluster.stats())}`)

  // Stays so: through later heartbeats and reconciliations (one per heartbeat period) nobody is closed.
  const heartbeats = async (): Promise<number[]> => ((await cluster.api.api('GET', '/v1/admin/nodes')).body.nodes as Array<{ heartbeatAt: number }>).map((n) => n.heartbeatAt)
  const from = Math.max(...await heartbeats())
  await waitUntil('four more heartbeat periods on both nodes', async () => { const h = await heartbeats(); return h.length === 2 && h.every((at) => at >= from + 4 * HB) }, 60_000, 50)
  assert.deepEqual(back.filter((d) => d.drops !== 1).map((d) => `${d.id}: ${d.drops}`), [])
  assert.equal(await allOnline(cluster, back), true, JSON.stringify(await cluster.stats()))
})
