import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isMqttString, refuseMalformedStrings } from '../../src/broker/aedes/refuse-malformed-utf8-strings.ts'
import { connectPacket, openPacketPipe, startAedes } from '../helpers/packet-pipe.ts'

test('an MQTT string is well-formed UTF-8 without U+0000', () => {
  assert.equal(isMqttString(Buffer.from('devices/d-1/telemetry')), true)
  assert.equal(isMqttString(Buffer.from('broadcast/groups/Größe/\uFFFD/😀')), true)
  assert.equal(isMqttString(Buffer.from([0x61, 0x00, 0x62])), false, 'U+0000')
  assert.equal(isMqttString(Buffer.from([0x61, 0x80])), false, 'lone continuation byte')
  assert.equal(isMqttString(Buffer.from([0xc0, 0xaf])), false, 'overlong "/"')
  assert.equal(isMqttString(Buffer.from([0xed, 0xa0, 0x80])), false, 'encoded surrogate U+D800')
  assert.equal(isMqttString(Buffer.from([0xe2, 0x82])), false, 'truncated sequence')
})

/** A QoS 0 PUBLISH whose topic is the given bytes, as a device would write it. */
function publishWithTopicBytes (topic: Buffer): Buffer {
  const payload = Buffer.from('x')
  const length = 2 + topic.length + payload.length
  return Buffer.concat([Buffer.from([0x30, length, topic.length >> 8, topic.length & 0xff]), topic, payload])
}

test('a PUBLISH with a malformed topic closes the connection; a well-formed one is routed', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const routed: string[] = []
  await new Promise<void>((resolve) => { aedes.subscribe('#', (packet, cb) => { routed.push(packet.topic); cb() }, resolve) })

  const pipe = openPacketPipe(aedes)
  let refusals = 0
  refuseMalformedStrings(pipe.client, () => { refusals++ })
  pipe.send(connectPacket('d-1'))
  await pipe.next('connack')
  pipe.send(publishWithTopicBytes(Buffer.from('devices/d-1/ok')))
  // An overlong "/" (0xC0 0xAF), which the lenient decoder turns into U+FFFD.
  pipe.send(publishWithTopicBytes(Buffer.from([0x61, 0xc0, 0xaf, 0x62])))
  await pipe.closed()
  assert.equal(refusals, 1)
  assert.deepEqual(routed.filter((topic) => !topic.startsWith('$SYS')), ['devices/d-1/ok'])
})
