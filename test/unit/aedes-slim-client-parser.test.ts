import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { Aedes } from 'aedes'
import { generate, type Packet } from 'mqtt-packet'
import { releaseConnectPacket, useLeanParserBuffer } from '../../src/broker/aedes/slim-client-parser.ts'

interface ClientInternals { _parser: { _list: object, settings: Record<string, unknown>, parse: (b: Buffer) => void, on: (e: 'packet', f: (p: Packet) => void) => void } }

test('a new aedes client gets a parser buffer that is a plain list, not a stream', { timeout: 120_000 }, async (t) => {
  const aedes = new Aedes()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => resolve()) }))
  const conn = new PassThrough()
  t.after(() => conn.destroy())
  const client = aedes.handle(conn) as unknown as ClientInternals
  assert.ok('_readableState' in client._parser._list, 'the installed mqtt-packet buffers in a stream (the case this is for)')
  assert.equal(useLeanParserBuffer(client), true)
  assert.equal('_readableState' in client._parser._list, false)
  assert.equal(useLeanParserBuffer(client), false, 'a second call changes nothing')
})

test('the parser still reads packets split at any byte after the swap', { timeout: 120_000 }, async (t) => {
  const aedes = new Aedes()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => resolve()) }))
  const conn = new PassThrough()
  t.after(() => conn.destroy())
  const client = aedes.handle(conn) as unknown as ClientInternals
  assert.equal(useLeanParserBuffer(client), true)
  // aedes reads the same packets (an anonymous connect, accepted by default); this listens beside it.
  const parser = client._parser
  const seen: Packet[] = []
  parser.on('packet', (p) => seen.push(p))
  const payload = Buffer.alloc(3000, 7)
  const bytes = Buffer.concat([
    generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'dev-1', username: 'dev-1', password: Buffer.from('token') }),
    generate({ cmd: 'publish', topic: 'devices/dev-1/telemetry', payload, qos: 1, messageId: 42, dup: false, retain: false }),
    generate({ cmd: 'pingreq' })
  ])
  for (let i = 0; i < bytes.length; i += 7) parser.parse(bytes.subarray(i, i + 7))
  assert.deepEqual(seen.map((p) => p.cmd), ['connect', 'publish', 'pingreq'])
  const publish = seen[1] as Packet & { payload: Buffer, messageId: number, topic: string }
  assert.equal(publish.topic, 'devices/dev-1/telemetry')
  assert.equal(publish.messageId, 42)
  assert.deepEqual(Buffer.from(publish.payload), payload)
})

test('a client of another shape is left alone', () => {
  assert.equal(useLeanParserBuffer(undefined), false)
  assert.equal(useLeanParserBuffer({}), false)
  assert.equal(useLeanParserBuffer({ _parser: { _list: { length: 0, constructor: {} } } }), false)
})

test('after the CONNECT the parser keeps its protocol version, not the packet with the token', () => {
  for (const protocolVersion of [4, 5] as const) {
    const aedes = new Aedes()
    const conn = new PassThrough()
    const client = aedes.handle(conn) as unknown as ClientInternals
    const parser = client._parser
    const seen: Packet[] = []
    parser.on('packet', (p) => seen.push(p))
    parser.parse(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, keepalive: 30, clientId: 'dev-2', username: 'dev-2', password: Buffer.from('secret-token') }))
    assert.equal(parser.settings.password !== undefined, true, 'mqtt-packet keeps the CONNECT (the case this is for)')
    assert.equal(releaseConnectPacket(client), true)
    assert.deepEqual(parser.settings, { protocolVersion })
    assert.equal(releaseConnectPacket(client), false, 'a second call changes nothing')
    // The next packets are still read with the connection's protocol version (v5: with properties).
    parser.parse(generate({ cmd: 'publish', topic: 'devices/dev-2/telemetry', payload: Buffer.from('x'), qos: 1, messageId: 7, dup: false, retain: false, ...(protocolVersion === 5 && { properties: { contentType: 'text/plain' } }) }, { protocolVersion }))
    const publish = seen[1] as Packet & { messageId: number, properties?: { contentType?: string } }
    assert.equal(publish.cmd, 'publish')
    assert.equal(publish.messageId, 7)
    if (protocolVersion === 5) assert.equal(publish.properties?.contentType, 'text/plain')
    conn.destroy()
    aedes.close()
  }
})
