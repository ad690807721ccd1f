import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { eventually } from '../helpers/eventually.ts'
import { rawConnect } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'

async function anonymous (t: TestContext, url: string, id: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4 })
  t.after(() => c.endAsync(true))
  return c
}

/** Publishes `count` QoS 0 messages in batches, as fast as the client's socket takes them. */
async function flood (client: MqttClient, topic: string, count: number, payload: Buffer): Promise<void> {
  for (let i = 0; i < count; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => client.publishAsync(topic, payload, { qos: 0 })))
  }
}

test('a subscriber that stops reading loses QoS 0 messages (counted) instead of growing the node; its QoS 1 messages wait and all arrive', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_SUBSCRIBER_BUFFER_BYTES: '65536', PUSHLINE_LOG_LEVEL: 'info' } })
  const frozen = await rawConnect(t, p.mqttPort ?? 0)
  frozen.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'frozen', clean: true, keepalive: 0 })
  assert.equal((await frozen.next() as { returnCode?: number }).returnCode, 0)
  frozen.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/zero', qos: 0 }, { topic: 'flood/one', qos: 1 }] })
  assert.equal((await frozen.next()).cmd, 'suback')
  // From here on the frozen subscriber reads nothing: the kernel buffers fill, then the node's.
  frozen.socket.pause()

  const reader = await anonymous(t, p.mqttUrl, 'reader')
  await reader.subscribeAsync('flood/zero', { qos: 0 })
  let readerGot = 0
  reader.on('message', () => { readerGot++ })

  const publisher = await anonymous(t, p.mqttUrl, 'publisher')
  const sent = 10_000
  await flood(publisher, 'flood/zero', sent, Buffer.alloc(2048, 7))
  for (let i = 0; i < 20; i++) await publisher.publishAsync('flood/one', `q1-${i}`, { qos: 1 })

  assert.ok(await eventually(async () => readerGot === sent, 90_000), `the reading subscriber got ${readerGot} of ${sent}`)
  const dropped = await p.metric('pushline_deliveries_dropped_total', { reason: 'slow_subscriber' })
  assert.ok(dropped > 0, 'QoS 0 messages to the frozen subscriber were dropped and counted')

  // The frozen subscriber reads again: every QoS 1 message is there, and what it got at QoS 0 plus what was
  // dropped for it is what was sent.
  let zeros = 0
  const ones: string[] = []
  frozen.socket.resume()
  while (ones.length < 20) {
    const packet = await frozen.next() as { cmd: string, topic?: string, payload?: Buffer, qos?: number, messageId?: number }
    if (packet.cmd !== 'publish') continue
    if (packet.topic === 'flood/zero') zeros++
    else {
      ones.push(String(packet.payload))
      frozen.send({ cmd: 'puback', messageId: packet.messageId })
    }
  }
  assert.deepEqual(ones, Array.from({ length: 20 }, (_, i) => `q1-${i}`))
  assert.equal(zeros + dropped, sent, `received ${zeros} + dropped ${dropped}`)
})

test('when deliveries pile up the node stops reading its publishers, and every message is either delivered or counted as dropped', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_DELIVERY_QUEUE_MAX: '100', PUSHLINE_LOG_LEVEL: 'info' } })
  const subscribers = 40
  let received = 0
  for (let i = 0; i < subscribers; i++) {
    const s = await anonymous(t, p.mqttUrl, `fan-${i}`)
    await s.subscribeAsync('fan/out', { qos: 0 })
    s.on('message', () => { received++ })
  }
  const publishers = await Promise.all(Array.from({ length: 5 }, (_, i) => anonymous(t, p.mqttUrl, `pub-${i}`)))
  const each = 1000
  await Promise.all(publishers.map((pub) => flood(pub, 'fan/out', each, Buffer.from('x'))))

  const expected = publishers.length * each * subscribers
  const dropped = async (): Promise<number> => await p.metric('pushline_deliveries_dropped_total')
  assert.ok(await eventually(async () => received + await dropped() === expected, 30_000), `received ${received} + dropped ${await dropped()} of ${expected}`)
  assert.ok(await p.metric('pushline_publishers_paused_total') > 0, 'publishers were paused')
  assert.equal(await p.metric('pushline_delivery_backlog'), 0, 'the backlog drains')
})
