import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isMqttString } from '../../src/broker/aedes/refuse-malformed-utf8-strings.ts'

test('an MQTT string is well-formed UTF-8 without U+0000', () => {
  assert.equal(isMqttString(Buffer.from('devices/d-1/telemetry')), true)
  assert.equal(isMqttString(Buffer.from('broadcast/groups/Größe/\uFFFD/😀')), true)
  assert.equal(isMqttString(Buffer.from([0x61, 0x00, 0x62])), false, 'U+0000')
  assert.equal(isMqttString(Buffer.from([0x61, 0x80])), false, 'lone continuation byte')
  assert.equal(isMqttString(Buffer.from([0xc0, 0xaf])), false, 'overlong "/"')
  assert.equal(isMqttString(Buffer.from([0xed, 0xa0, 0x80])), false, 'encoded surrogate U+D800')
  assert.equal(isMqttString(Buffer.from([0xe2, 0x82])), false, 'truncated sequence')
})
