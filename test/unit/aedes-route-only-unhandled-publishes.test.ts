import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { PublishPacket } from 'aedes'
import { routeOnlyUnhandledPublishes } from '../../src/broker/aedes/route-only-unhandled-publishes.ts'
import { connectPacket, openPacketPipe, startAedes, subscribePacket, type PacketPipe } from '../helpers/packet-pipe.ts'

test('a publish the hooks consumed is acknowledged and not routed; others are routed', { timeout: 60_000 }, async (t) => {
  const consumed = new WeakSet<PublishPacket>()
  const aedes = await startAedes(t, {
    authorizePublish (_client, packet, done) {
      if (packet.topic === 'devices/d-1/telemetry') consumed.add(packet)
      done(null)
    }
  })
  routeOnlyUnhandledPublishes(aedes, { nodeId: aedes.id, consumed: (p) => consumed.has(p) })

  const { subscriber, device } = await watcherAndDevice(aedes, 'devices/+/telemetry')
  device.send({ cmd: 'publish', topic: 'devices/d-1/telemetry', payload: Buffer.from('uplink'), qos: 1, messageId: 5, retain: false, dup: false })
  assert.equal((await device.next('puback') as { messageId: number }).messageId, 5)
  // Published after the uplink by the same connection, at the same QoS (the same path through aedes): routed,
  // and after the uplink would have been.
  device.send({ cmd: 'publish', topic: 'marker', payload: Buffer.from('m'), qos: 1, messageId: 6, retain: false, dup: false })
  const first = await subscriber.next('publish') as { topic: string }
  assert.equal(first.topic, 'marker')
})

test('aedes\'s announcements of connects, subscribes, unsubscribes and disconnects are not published', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  routeOnlyUnhandledPublishes(aedes, { nodeId: aedes.id, consumed: () => false })
  const seen: string[] = []
  const listen = (topic: string): Promise<void> => new Promise((resolve) => { aedes.subscribe(topic, (packet, cb) => { seen.push(packet.topic); cb() }, resolve) })
  await listen(`$SYS/${aedes.id}/new/clients`)
  await listen(`$SYS/${aedes.id}/disconnect/clients`)
  await listen(`$SYS/${aedes.id}/new/subscribes`)
  await listen(`$SYS/${aedes.id}/new/unsubscribes`)
  await listen('marker')

  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('d-1'))
  await pipe.next('connack')
  pipe.send(subscribePacket(1, [['devices/d-1/down', 1]]))
  await pipe.next('suback')
  pipe.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['devices/d-1/down'] })
  await pipe.next('unsuback')
  pipe.send({ cmd: 'disconnect' })
  await pipe.closed()
  const marked = new Promise<void>((resolve) => { aedes.publish({ cmd: 'publish', topic: 'marker', payload: Buffer.from('m'), qos: 0, retain: false, dup: false }, () => { resolve() }) })
  await marked
  assert.deepEqual(seen, ['marker'])
})

test('aedes asks about each publish once, at every QoS: a consumed answer may forget the packet', { timeout: 60_000 }, async (t) => {
  const consumed = new WeakSet<PublishPacket>()
  const asked = new Map<string, number>()
  const aedes = await startAedes(t, {
    authorizePublish (_client, packet, done) {
      if (packet.topic.startsWith('devices/d-1/telemetry')) consumed.add(packet)
      done(null)
    }
  })
  routeOnlyUnhandledPublishes(aedes, {
    nodeId: aedes.id,
    consumed: (p) => {
      asked.set(p.topic, (asked.get(p.topic) ?? 0) + 1)
      return consumed.delete(p)
    }
  })
  const { subscriber, device } = await watcherAndDevice(aedes, 'devices/+/telemetry/+')
  device.send({ cmd: 'publish', topic: 'devices/d-1/telemetry/q0', payload: Buffer.from('u0'), qos: 0, retain: false, dup: false })
  device.send({ cmd: 'publish', topic: 'devices/d-1/telemetry/q1', payload: Buffer.from('u1'), qos: 1, messageId: 7, retain: false, dup: false })
  await device.next('puback')
  device.send({ cmd: 'publish', topic: 'devices/d-1/telemetry/q2', payload: Buffer.from('u2'), qos: 2, messageId: 8, retain: false, dup: false })
  await device.next('pubrec')
  device.send({ cmd: 'pubrel', messageId: 8 })
  await device.next('pubcomp')
  device.send({ cmd: 'publish', topic: 'marker', payload: Buffer.from('m'), qos: 1, messageId: 9, retain: false, dup: false })
  await device.next('puback')
  // None of the consumed ones reached the subscriber, though the set forgot each after its one question.
  assert.equal((await subscriber.next('publish') as { topic: string }).topic, 'marker')
  assert.deepEqual(Object.fromEntries(asked), { 'devices/d-1/telemetry/q0': 1, 'devices/d-1/telemetry/q1': 1, 'devices/d-1/telemetry/q2': 1, marker: 1 })
})

/** A watcher subscribed to `filter` and to `marker`, and device d-1, both connected. */
async function watcherAndDevice (aedes: Parameters<typeof openPacketPipe>[0], filter: string): Promise<{ subscriber: PacketPipe, device: PacketPipe }> {
  const subscriber = openPacketPipe(aedes)
  subscriber.send(connectPacket('watcher'))
  await subscriber.next('connack')
  subscriber.send(subscribePacket(1, [[filter, 0], ['marker', 0]]))
  await subscriber.next('suback')
  const device = openPacketPipe(aedes)
  device.send(connectPacket('d-1'))
  await device.next('connack')
  return { subscriber, device }
}
