import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mayPublish, maySubscribe, type Identity } from '../../src/broker/topic-acl.ts'
import { devicePublishRoute } from '../../src/shared/topics.ts'

const devA: Identity = { kind: 'device', deviceId: 'dev-a', groups: ['g1'] }
const anonymous: Identity = { kind: 'anonymous' }

test('a device may publish telemetry, telemetry streams, events and acks on its own topics', () => {
  for (const topic of [
    'devices/dev-a/telemetry',
    'devices/dev-a/telemetry/temp',
    'devices/dev-a/telemetry/sensor_1.v2-x',
    'devices/dev-a/events',
    'devices/dev-a/ack'
  ]) {
    assert.equal(mayPublish(devA, topic), true, topic)
  }
})

test('a device may not publish to any other topic', () => {
  for (const topic of [
    'devices/dev-b/telemetry',
    'devices/dev-b/events',
    'devices/dev-b/ack',
    'devices/dev-a/down',
    'devices/dev-a/telemetry/a/b',
    'devices/dev-a/telemetry/',
    'devices/dev-a/telemetry/+',
    'devices/dev-a/telemetry/#',
    'devices/dev-a/telemetry/has space',
    `devices/dev-a/telemetry/${'s'.repeat(65)}`,
    'devices/dev-a/telemetryx',
    'devices/dev-a/events/x',
    'devices/dev-a/ack/x',
    'devices/dev-a/',
    'devices/dev-a',
    'devices/+/telemetry',
    'devices//telemetry',
    '/devices/dev-a/telemetry',
    'Devices/dev-a/telemetry',
    '$SYS/x',
    '$SYS/broker/clients',
    'broadcast/all',
    'broadcast/groups/g1',
    'something/else',
    ''
  ]) {
    assert.equal(mayPublish(devA, topic), false, JSON.stringify(topic))
  }
})

test('devicePublishRoute tells telemetry, events and acks apart', () => {
  assert.deepEqual(devicePublishRoute('dev-a', 'devices/dev-a/telemetry'), { type: 'uplink', kind: 'telemetry' })
  assert.deepEqual(devicePublishRoute('dev-a', 'devices/dev-a/telemetry/temp'), { type: 'uplink', kind: 'telemetry' })
  assert.deepEqual(devicePublishRoute('dev-a', 'devices/dev-a/events'), { type: 'uplink', kind: 'events' })
  assert.deepEqual(devicePublishRoute('dev-a', 'devices/dev-a/ack'), { type: 'ack' })
})

test('devicePublishRoute returns undefined for topics the device may not publish to', () => {
  for (const topic of ['devices/dev-b/telemetry', 'devices/dev-a/down', 'devices/dev-a/telemetry/a/b', 'devices/dev-a', 'devices/dev-a/', 'devices/dev-a-telemetry', 'devices/dev-axtelemetry', 'xdevices/dev-a/telemetry', 'devices//telemetry', '$SYS/x', 'broadcast/all']) {
    assert.equal(devicePublishRoute('dev-a', topic), undefined, topic)
  }
})

test('a device may subscribe to its own downlink, broadcast/all and its own groups', () => {
  for (const filter of ['devices/dev-a/down', 'broadcast/all', 'broadcast/groups/g1']) {
    assert.equal(maySubscribe(devA, filter), true, filter)
  }
  const multi: Identity = { kind: 'device', deviceId: 'dev-a', groups: ['g1', 'g2'] }
  assert.equal(maySubscribe(multi, 'broadcast/groups/g2'), true)
})

test('a device may not subscribe to other devices, other groups, wildcards or $SYS', () => {
  for (const filter of [
    'devices/dev-b/down',
    '#',
    '+',
    '+/+',
    'devices/+/down',
    'devices/dev-a/#',
    'devices/dev-a/+',
    'devices/#',
    'devices/dev-a/telemetry',
    'devices/dev-a/ack',
    '$SYS/#',
    '$SYS/broker/clients',
    'broadcast/groups/g2',
    'broadcast/#',
    'broadcast/+',
    'broadcast/groups/+',
    'broadcast/groups/#',
    'broadcast/groups/',
    'broadcast/groups/g1/x',
    'broadcast/all/x',
    '$share/x/devices/dev-a/down',
    ''
  ]) {
    assert.equal(maySubscribe(devA, filter), false, JSON.stringify(filter))
  }
})

test('a device without groups may not subscribe to any group', () => {
  const lonely: Identity = { kind: 'device', deviceId: 'dev-a', groups: [] }
  assert.equal(maySubscribe(lonely, 'broadcast/groups/g1'), false)
  assert.equal(maySubscribe(lonely, 'broadcast/groups/'), false)
  assert.equal(maySubscribe(lonely, 'broadcast/all'), true)
})

test('an anonymous client may publish and subscribe anywhere except topics starting with $', () => {
  for (const topic of ['devices/dev-a/telemetry', 'devices/dev-b/down', 'broadcast/all', 'anything/at/all', 'x']) {
    assert.equal(mayPublish(anonymous, topic), true, topic)
  }
  for (const filter of ['#', '+/+', 'devices/+/down', 'broadcast/#', 'devices/dev-a/down']) {
    assert.equal(maySubscribe(anonymous, filter), true, filter)
  }
  for (const t of ['$SYS/x', '$SYS/#', '$share/g/x', '$']) {
    assert.equal(mayPublish(anonymous, t), false, t)
    assert.equal(maySubscribe(anonymous, t), false, t)
  }
})

test('a device whose id is a prefix of another id cannot reach the other device\'s topics', () => {
  const dev: Identity = { kind: 'device', deviceId: 'dev', groups: [] }
  for (const topic of ['devices/dev-a/telemetry', 'devices/dev-a/events', 'devices/dev-a/ack', 'devices/dev-a/telemetry/temp']) {
    assert.equal(mayPublish(dev, topic), false, topic)
    assert.equal(devicePublishRoute('dev', topic), undefined, topic)
  }
  assert.equal(maySubscribe(dev, 'devices/dev-a/down'), false)
  assert.equal(mayPublish(dev, 'devices/dev/telemetry'), true)
  assert.equal(maySubscribe(dev, 'devices/dev/down'), true)

  // And the other way round: the longer id does not reach the shorter one's topics.
  assert.equal(mayPublish(devA, 'devices/dev/telemetry'), false)
  assert.equal(maySubscribe(devA, 'devices/dev/down'), false)
})

test('a group name that is a prefix of another group does not grant the longer one', () => {
  const g: Identity = { kind: 'device', deviceId: 'dev-a', groups: ['g'] }
  assert.equal(maySubscribe(g, 'broadcast/groups/g'), true)
  assert.equal(maySubscribe(g, 'broadcast/groups/g1'), false)
})
