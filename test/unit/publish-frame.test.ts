import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generate } from 'mqtt-packet'
import { publishFrame } from '../../src/push/publish-frame.ts'

test('a broadcast frame has the same bytes as an MQTT library\'s PUBLISH, at QoS 0 and 1, for 3.1.1 and 5', () => {
  const payloads = [Buffer.from('{"id":"p-1","data":{}}'), Buffer.alloc(200, 7), Buffer.alloc(20_000, 1)]
  for (const payload of payloads) {
    for (const protocolVersion of [4, 5]) {
      const opts = { protocolVersion }
      const zero = publishFrame('broadcast/all', payload, 0, protocolVersion)
      assert.deepEqual(zero.bytes(), generate({ cmd: 'publish', topic: 'broadcast/all', payload, qos: 0, retain: false, dup: false }, opts))
      const one = publishFrame('broadcast/groups/ü', payload, 1, protocolVersion)
      for (const messageId of [1, 300, 65535]) {
        assert.deepEqual(one.bytes(messageId), generate({ cmd: 'publish', topic: 'broadcast/groups/ü', payload, qos: 1, messageId, retain: false, dup: false }, opts))
      }
      // Each QoS 1 copy is its own buffer.
      assert.notEqual(one.bytes(1), one.bytes(1))
    }
  }
})
