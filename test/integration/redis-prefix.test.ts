import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { bounded, eventually } from '../helpers/eventually.ts'
import { startTestCluster } from '../helpers/cluster.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { connectRedis } from '../helpers/services.ts'

// Two deployments on one Redis, told apart only by PUSHLINE_REDIS_PREFIX, must not see each other: not in keys,
// not in pub/sub (aedes announces every connect on $SYS/{node}/new/clients, and every node that receives it
// closes its own client with that id).

test('two deployments sharing one Redis under different prefixes keep the same device id connected in both, and keep their sessions apart', { timeout: 120_000 }, async (t) => {
  const a = await startTestCluster(t, { nodes: 1, heartbeatMs: 500 })
  const b = await startTestCluster(t, { nodes: 1, heartbeatMs: 500 })
  const id = `shared-${randomUUID().slice(0, 8)}`
  const { token: tokenA } = await a.api.provision(id)
  const { token: tokenB } = await b.api.provision(id)

  const inA = await connectDevice(t, (a.nodes[0] as { mqttUrl: string }).mqttUrl, id, tokenA, { clean: false })
  await inA.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  let closedA = false
  inA.on('close', () => { closedA = true })
  const inB = await connectDevice(t, (b.nodes[0] as { mqttUrl: string }).mqttUrl, id, tokenB)
  let closedB = false
  inB.on('close', () => { closedB = true })

  const online = async (cluster: typeof a): Promise<boolean> => (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.online === true
  assert.ok(await eventually(async () => await online(a) && await online(b)), 'online in both deployments')
  // Marker: a push through A after B's connect has been recorded, answered with a PUBACK from the device in A.
  const got = new Promise<void>((resolve) => inA.once('message', () => resolve()))
  assert.equal((await a.api.api('POST', '/v1/admin/push', { deviceId: id, data: 'marker', ttlSeconds: 60 })).status, 202)
  await bounded('the marker push in deployment A', got)
  assert.equal(closedA, false, 'the connection in deployment A was closed by a connect in deployment B')
  assert.equal(closedB, false)

  // A's persistent session is stored under A's prefix only.
  const redis = connectRedis(t)
  assert.equal(await redis.exists(`${a.prefix}aedes:client:${id}`), 1)
  assert.equal(await redis.exists(`${b.prefix}aedes:client:${id}`), 0)
  assert.equal(await redis.exists(`client:${id}`), 0, 'nothing written without a prefix')
})
