import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generate } from 'mqtt-packet'
import { rawConnect, type RawConnection } from '../helpers/mqtt.ts'
import { startTestPlatform, type TestPlatform } from '../helpers/platform.ts'

// MQTT 3.1.1 section 1.5.3: topic names and filters that are not well-formed UTF-8, or that hold U+0000, close
// the connection. Sent as raw packets over TCP: no client library sends them.

const PLACEHOLDER = Buffer.from('@@')

/** The packet as mqtt-packet encodes it, with the two bytes `@@` of its topic replaced by `bytes`. */
function withTopicBytes (packet: Parameters<typeof generate>[0], bytes: number[]): Buffer {
  const wire = generate(packet)
  const at = wire.indexOf(PLACEHOLDER)
  assert.ok(at > 0)
  Buffer.from(bytes).copy(wire, at)
  return wire
}

async function connected (t: Parameters<typeof rawConnect>[0], p: TestPlatform, id: string, token: string): Promise<RawConnection> {
  const raw = await rawConnect(t, p.mqttPort ?? 0)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, username: id, password: Buffer.from(token), clean: true, keepalive: 30 })
  assert.equal((await raw.next() as { returnCode?: number }).returnCode, 0)
  return raw
}

test('a PUBLISH or SUBSCRIBE whose topic is not well-formed UTF-8 or holds U+0000 closes the connection, with no PUBACK or SUBACK', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const { token } = await p.provision('utf8-dev')
  const cases = [
    { what: 'PUBLISH, a lone continuation byte', bytes: [0x41, 0x80], packet: { cmd: 'publish', topic: 'devices/utf8-dev/telemetry/@@', payload: 'x', qos: 1, messageId: 7 } },
    { what: 'PUBLISH, an overlong encoding of "/"', bytes: [0xc0, 0xaf], packet: { cmd: 'publish', topic: 'devices/utf8-dev/telemetry/@@', payload: 'x', qos: 1, messageId: 7 } },
    { what: 'PUBLISH, U+0000', bytes: [0x41, 0x00], packet: { cmd: 'publish', topic: 'devices/utf8-dev/telemetry/@@', payload: 'x', qos: 1, messageId: 7 } },
    { what: 'SUBSCRIBE, a truncated sequence', bytes: [0x41, 0xe2], packet: { cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'broadcast/@@', qos: 1 }] } },
    { what: 'SUBSCRIBE, U+0000', bytes: [0x00, 0x41], packet: { cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'broadcast/@@', qos: 1 }] } }
  ] as const
  for (const c of cases) {
    const raw = await connected(t, p, 'utf8-dev', token)
    raw.socket.write(withTopicBytes(c.packet as Parameters<typeof generate>[0], [...c.bytes]))
    // next() rejects when the socket closes before any packet arrives: no PUBACK or SUBACK came first.
    await assert.rejects(raw.next(), /socket closed before a packet arrived/, c.what)
  }
  assert.equal(await p.metric('pushline_uplinks_refused_total', { reason: 'malformed_string' }), cases.length)

  // A well-formed U+FFFD (EF BF BD) is a character like any other: this topic is only outside the device's own,
  // so it is dropped and PUBACKed, and the connection stays.
  const raw = await connected(t, p, 'utf8-dev', token)
  raw.socket.write(generate({ cmd: 'publish', topic: 'devices/utf8-dev/telemetry/\uFFFD', payload: 'x', qos: 1, messageId: 9, retain: false, dup: false }))
  const ack = await raw.next()
  assert.equal(ack.cmd, 'puback')
  assert.equal((ack as { messageId?: number }).messageId, 9)
  raw.send({ cmd: 'pingreq' })
  assert.equal((await raw.next()).cmd, 'pingresp', 'still connected')
})
