import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { connectDevice, within } from '../helpers/mqtt.ts'
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

test('revoking through node A ends the device\'s connection on node B within one second', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  const b = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await a.provision('c-rev')
  const client = await connectDevice(t, b.mqttUrl, 'c-rev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  assert.equal((await a.api('POST', '/v1/admin/devices/c-rev/revoke')).status, 200)
  assert.equal(await within(1000, closed), true, 'closed within 1 s')
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
  assert.equal(await within(2000, closed), true, 'the older connection is closed')
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
  for (let i = 0; i < 50 && entry === null; i++) {
    entry = await redis.hget(`${prefix}presence`, 'c-epoch')
    if (entry === null) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const [nodeId, epoch] = (entry ?? '').split(' ')
  assert.equal(nodeId, a.config.nodeId)
  const order = (e: number): string => JSON.stringify({ deviceId: 'c-epoch', reason: 'takeover', target: { nodeId, epoch: e } })
  await redis.publish(`${prefix}kick`, order(Number(epoch) - 1))
  await redis.publish(`${prefix}kick`, JSON.stringify({ deviceId: 'c-epoch', reason: 'takeover', target: { nodeId: 'another-node', epoch: Number(epoch) } }))
  assert.equal(await within(1000, closed), false, 'an order for an older epoch or another node leaves the connection open')
  await redis.publish(`${prefix}kick`, order(Number(epoch)))
  assert.equal(await within(2000, closed), true, 'the order naming its epoch closes it')
})

test('a persistent session subscribing to several filters in one SUBSCRIBE gets its SUBACK (research/aedes.md §6)', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = await startTestPlatform(t, { clusterPrefix: prefix })
  await startTestPlatform(t, { clusterPrefix: prefix })
  for (let i = 0; i < 5; i++) {
    const id = `c-multi-${i}`
    const { token } = await a.provision(id, ['g1'])
    const client = await connectDevice(t, a.mqttUrl, id, token, { clean: false })
    const granted = await Promise.race([
      client.subscribeAsync({ [`devices/${id}/down`]: { qos: 1 }, 'broadcast/all': { qos: 1 }, 'broadcast/groups/g1': { qos: 1 } }),
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`no SUBACK for ${id} within 5 s`)), 5000))
    ])
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
  await mine
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.deepEqual(received, ['devices/c-spy/down'])
})

test('revoking through the API process ends the device\'s connection on a separate broker process within one second', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const api = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_ROLE: 'api' } })
  assert.equal(api.mqttPort, undefined, 'the api role runs no broker')
  const broker = await startPlatformProcess(t, { PUSHLINE_ROLE: 'broker', PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: prefix })
  const { token } = await api.provision('proc-rev')
  const client = await connectDevice(t, `mqtt://127.0.0.1:${broker.mqttPort}`, 'proc-rev', token)
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  assert.equal((await api.api('POST', '/v1/admin/devices/proc-rev/revoke')).status, 200)
  assert.equal(await within(1000, closed), true, 'closed within 1 s')
  await assert.rejects(connectDevice(t, `mqtt://127.0.0.1:${broker.mqttPort}`, 'proc-rev', token), /Bad username or password/i)
  // The broker role serves health and metrics only.
  assert.equal((await fetch(`http://127.0.0.1:${broker.httpPort}/v1/admin/devices`)).status, 404)
  assert.equal((await fetch(`http://127.0.0.1:${broker.httpPort}/readyz`)).status, 200)
})
