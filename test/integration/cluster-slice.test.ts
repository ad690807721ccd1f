import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { bounded, eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { startPlatformProcess } from '../helpers/process.ts'
import { connectRedis, redisUrl } from '../helpers/services.ts'

test('two nodes on one Redis: a device made through node A connects to node B and its uplink lands in B\'s spool', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const b = await startTestPlatform(t, { clusterPrefix: prefix })
  assert.equal(a.config.mode, 'cluster')
  const { token } = await a.provision('c-dev')
  const client = await connectDevice(t, b.mqttUrl, 'c-dev', token)
  await client.publishAsync('devices/c-dev/telemetry', 'via b', { qos: 1 })
  const records = []
  for await (const r of readSpool(join(b.dataDir, 'spool'))) records.push(r)
  assert.equal(records.length, 1)
  assert.equal(records[0]?.nodeId, b.config.nodeId)
  const onA = []
  for await (const r of readSpool(join(a.dataDir, 'spool'))) onA.push(r)
  assert.equal(onA.length, 0, 'an uplink is spooled once, by the node it arrived at')
})

test('revoking through node A ends the device\'s connection on node B', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const b = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await a.provision('c-rev')
  const client = await connectDevice(t, b.mqttUrl, 'c-rev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  assert.equal((await a.api('POST', '/v1/admin/devices/c-rev/revoke')).status, 200)
  await bounded('the connection on B to close', closed)
  await assert.rejects(connectDevice(t, b.mqttUrl, 'c-rev', token), /Bad username or password/i)
})

test('a second connection with the same device id on another node takes the session over', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const b = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await a.provision('c-take')
  const first = await connectDevice(t, a.mqttUrl, 'c-take', token)
  const closed = new Promise<void>((resolve) => first.once('close', () => resolve()))
  const second = await connectDevice(t, b.mqttUrl, 'c-take', token)
  await bounded('the older connection to close', closed)
  assert.equal(second.connected, true)
})

test('a takeover order closes only the connection it names by node and epoch: orders for an older epoch or another node leave the device connected', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await a.provision('c-epoch')
  const device = await connectDevice(t, a.mqttUrl, 'c-epoch', token)
  const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
  const redis = connectRedis(t)
  // Presence holds "node epoch connectedAt"; the cluster member writes it right after the client registers.
  let entry: string | null = null
  const present = async (id: string): Promise<boolean> => { entry = await redis.hget(`${prefix}presence`, id); return entry !== null }
  assert.ok(await eventually(() => present('c-epoch')), 'presence written')
  const [nodeId, epoch] = (entry ?? '').split(' ')
  assert.equal(nodeId, a.config.nodeId)
  const order = (e: number): string => JSON.stringify({ deviceId: 'c-epoch', reason: 'takeover', target: { nodeId, epoch: e } })
  await redis.publish(`${prefix}kick`, order(Number(epoch) - 1))
  await redis.publish(`${prefix}kick`, JSON.stringify({ deviceId: 'c-epoch', reason: 'takeover', target: { nodeId: 'another-node', epoch: Number(epoch) } }))
  // Marker: a right order for another device on the same node, sent after the wrong ones on the same channel,
  // so once it has closed that device the node has handled the wrong orders too.
  const { token: markerToken } = await a.provision('c-epoch-marker')
  const marker = await connectDevice(t, a.mqttUrl, 'c-epoch-marker', markerToken)
  const markerClosed = new Promise<void>((resolve) => marker.once('close', () => resolve()))
  assert.ok(await eventually(() => present('c-epoch-marker')), 'marker presence written')
  const [markerNode, markerEpoch] = (entry ?? '').split(' ')
  await redis.publish(`${prefix}kick`, JSON.stringify({ deviceId: 'c-epoch-marker', reason: 'takeover', target: { nodeId: markerNode, epoch: Number(markerEpoch) } }))
  await bounded('the marker device to be closed', markerClosed)
  assert.equal(device.connected, true, 'the orders for an older epoch or another node left the device connected')
  // A PUBACK now proves the node still holds the connection after handling the wrong orders.
  await bounded('a PUBACK on the device', device.publishAsync('devices/c-epoch/telemetry', 'still here', { qos: 1 }))
  await redis.publish(`${prefix}kick`, order(Number(epoch)))
  await bounded('the order naming its epoch to close the device', closed)
})

test('a persistent session subscribing to several filters in one SUBSCRIBE gets its SUBACK (docs/design.md)', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  await startTestPlatform(t, { clusterPrefix: prefix })
  for (let i = 0; i < 5; i++) {
    const id = `c-multi-${i}`
    const { token } = await a.provision(id, ['g1'])
    const client = await connectDevice(t, a.mqttUrl, id, token, { clean: false })
    const granted = await bounded(`the SUBACK for ${id}`,
      client.subscribeAsync({ [`devices/${id}/down`]: { qos: 1 }, 'broadcast/all': { qos: 1 }, 'broadcast/groups/g1': { qos: 1 } }))
    assert.deepEqual(granted.map((g) => g.qos), [1, 1, 1])
    await client.endAsync()
  }
})

test('a refused filter in a persistent SUBSCRIBE is not stored: messages on it never reach the device, even after it reconnects', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await a.provision('c-spy')
  const spy = await connectDevice(t, a.mqttUrl, 'c-spy', token, { clean: false })
  const granted = await spy.subscribeAsync({ 'devices/c-spy/down': { qos: 1 }, 'devices/c-victim/down': { qos: 1 } })
    .catch((err: { packet?: { granted: number[] } }) => err.packet?.granted.map((qos) => ({ qos })) ?? [])
  assert.deepEqual(granted.map((g) => g.qos), [1, 128])
  await spy.endAsync()

  // Published through the broker as the admin path will, at QoS 1: a stored subscription would queue it for the spy.
  await new Promise<void>((resolve, reject) => a.broker?.aedes.publish({ cmd: 'publish', topic: 'devices/c-victim/down', payload: Buffer.from('secret'), qos: 1, retain: false, dup: false }, (err) => err ? reject(err) : resolve()))
  await new Promise<void>((resolve, reject) => a.broker?.aedes.publish({ cmd: 'publish', topic: 'devices/c-spy/down', payload: Buffer.from('mine'), qos: 1, retain: false, dup: false }, (err) => err ? reject(err) : resolve()))

  const received: string[] = []
  const again = await connectDevice(t, a.mqttUrl, 'c-spy', token, { clean: false })
  again.on('message', (topic) => received.push(topic))
  const mine = new Promise<void>((resolve) => again.on('message', (topic) => { if (topic === 'devices/c-spy/down') resolve() }))
  // The queue delivers in publish order: the victim's message, published first, would have come before this one.
  await bounded('the spy\'s own queued message', mine)
  assert.deepEqual(received, ['devices/c-spy/down'])
})

test('revoking through the API process ends the device\'s connection on a separate broker process', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const api = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_ROLE: 'api' } })
  assert.equal(api.mqttPort, undefined, 'the api role runs no broker')
  const broker = await startPlatformProcess(t, { PUSHLINE_ROLE: 'broker', PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: prefix })
  const { token } = await api.provision('proc-rev')
  const client = await connectDevice(t, `mqtt://127.0.0.1:${broker.mqttPort}`, 'proc-rev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  assert.equal((await api.api('POST', '/v1/admin/devices/proc-rev/revoke')).status, 200)
  await bounded('the connection on the broker process to close', closed)
  await assert.rejects(connectDevice(t, `mqtt://127.0.0.1:${broker.mqttPort}`, 'proc-rev', token), /Bad username or password/i)
  // The broker role serves health and metrics only.
  assert.equal((await fetch(`http://127.0.0.1:${broker.httpPort}/v1/admin/devices`)).status, 404)
  assert.equal((await fetch(`http://127.0.0.1:${broker.httpPort}/readyz`)).status, 200)
})
