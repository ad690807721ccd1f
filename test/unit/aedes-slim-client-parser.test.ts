import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { Aedes } from 'aedes'
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet'
import { buildParsersOnPlainLists, releaseConnectPacket } from '../../src/broker/aedes/slim-client-parser.ts'

/** An mqtt-packet parser with the buffer it reads from. */
const newParser = (): ParserBuffer => mqttParser() as unknown as ParserBuffer
interface ParserBuffer { _list: object, on: (e: 'error', f: () => void) => void, parse: (b: Buffer) => void }
interface ClientInternals { _parser: { _list: object, settings: Record<string, unknown>, parse: (b: Buffer) => void, on: (e: 'packet', f: (p: Packet) => void) => void } }

// The first test sees the parsers as mqtt-packet builds them, then installs the change for the whole process (this
// file's): the tests after it run on parsers built on plain lists.
test('once installed, new parsers (and parsers reset after an error) buffer in a plain list, not a stream', { timeout: 120_000 }, async (t) => {
  const aedes = new Aedes()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => resolve()) }))
  const before = aedes.handle(new PassThrough()) as unknown as ClientInternals
  assert.ok('_readableState' in before._parser._list, 'the installed mqtt-packet buffers in a stream (the case this is for)')
  assert.equal(buildParsersOnPlainLists(), true)
  assert.equal(buildParsersOnPlainLists(), false, 'a second call changes nothing')
  const conn = new PassThrough()
  t.after(() => conn.destroy())
  const client = aedes.handle(conn) as unknown as ClientInternals
  assert.equal('_readableState' in client._parser._list, false)
  assert.equal('_readableState' in newParser()._list, false, 'MQTT.js builds its parsers from the same module')
  // A parse error resets the parser (mqtt-packet's _resetState), on its next parse.
  const parser = newParser()
  parser.on('error', () => {})
  parser.parse(Buffer.from([0x00, 0x00]))
  parser.parse(generate({ cmd: 'pingreq' }))
  assert.equal('_readableState' in parser._list, false)
})

test('the parser still reads packets split at any byte on a plain list', { timeout: 120_000 }, async (t) => {
  const aedes = new Aedes()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => resolve()) }))
  const conn = new PassThrough()
  t.after(() => conn.destroy())
  const client = aedes.handle(conn) as unknown as ClientInternals
  assert.equal('_readableState' in client._parser._list, false)
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

test('a parser of another shape is left alone', () => {
  assert.equal(buildParsersOnPlainLists(undefined), false)
  assert.equal(buildParsersOnPlainLists({}), false)
  // Its reset sets a field this was not written for.
  class Other { _resetState (this: Record<string, unknown>): void { this._list = []; this.packet = {}; this.error = null; this._stateCounter = 0; this.extra = 1 } }
  const other = new Other()
  assert.equal(buildParsersOnPlainLists(other), false)
  assert.equal(Object.getOwnPropertyNames(Other.prototype).length, 2, 'nothing added to its prototype')
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
