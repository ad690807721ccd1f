// The simulator's own wire code: the light engine's hand-written MQTT packets against mqtt-packet (the reference
// for every byte), and the HTTP client's answers, errors and connection reuse against a real HTTP server.

import assert from 'node:assert/strict'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import { generate, parser, type Packet } from 'mqtt-packet'
import { createLightConnector } from '../../devices-sim/src/engine-light.ts'
import { SimError } from '../../devices-sim/src/errors.ts'
import { createHttpApi } from '../../devices-sim/src/http-api.ts'
import { encodeConnect, encodeSubscribe, readLightPackets } from '../../devices-sim/src/light-packets.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'

test('CONNECT and SUBSCRIBE are byte for byte what mqtt-packet generates, short and past 127 bytes, in any script', () => {
  const cases = [
    { clientId: 'd-1', username: 'd-1', password: 'tok', keepalive: 60, clean: true },
    { clientId: 'fab12cd-99999', username: 'fab12cd-99999', password: 'x'.repeat(300), keepalive: 0, clean: false },
    { clientId: 'gerät-ü-設備', username: 'gerät-ü-設備', password: 'p€ss', keepalive: 65_535, clean: true }
  ]
  for (const c of cases) {
    assert.deepEqual(encodeConnect(c), generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: c.clientId, username: c.username, password: Buffer.from(c.password), keepalive: c.keepalive, clean: c.clean }), c.clientId)
  }
  const filterSets = [['devices/d-1/down', 'broadcast/all'], ['devices/d-1/down', 'broadcast/all', 'broadcast/groups/g-ü'], [`devices/${'x'.repeat(200)}/down`]]
  for (const filters of filterSets) {
    for (const qos of [0, 1] as const) {
      assert.deepEqual(encodeSubscribe(65_535, filters, qos), generate({ cmd: 'subscribe', messageId: 65_535, subscriptions: filters.map((topic) => ({ topic, qos })) }), filters.join(','))
    }
  }
})

/** What mqtt-packet's parser makes of `bytes`. */
function parsed (bytes: Buffer): Packet[] {
  const out: Packet[] = []
  const p = parser({ protocolVersion: 4 })
  p.on('packet', (packet: Packet) => out.push(packet))
  p.parse(bytes)
  return out
}

test('the light reader reads CONNACK, SUBACK, PUBACK and PINGRESP as the parser does and stops at anything else or at a split packet', () => {
  const packets = [
    generate({ cmd: 'connack', returnCode: 0, sessionPresent: true }),
    generate({ cmd: 'suback', messageId: 7, granted: [1, 0, 128] }),
    generate({ cmd: 'puback', messageId: 513 }),
    generate({ cmd: 'pingresp' }),
    generate({ cmd: 'connack', returnCode: 5, sessionPresent: false })
  ]
  const all = Buffer.concat(packets)
  const read: Packet[] = []
  assert.equal(readLightPackets(all, (p) => read.push(p)), all.length)
  const reference = parsed(all)
  assert.equal(read.length, reference.length)
  read.forEach((p, i) => {
    const ref = reference[i] as Packet & Record<string, unknown>
    for (const [key, value] of Object.entries(p)) assert.deepEqual(value, ref[key], `${p.cmd}.${key}`)
  })

  const publish = generate({ cmd: 'publish', topic: 'devices/d-1/down', payload: Buffer.from('{}'), qos: 1, messageId: 3, dup: false, retain: false })
  const connack = packets[0] as Buffer
  const none: Packet[] = []
  // A PUBLISH after a CONNACK: the reader takes the CONNACK and leaves the PUBLISH where it starts.
  assert.equal(readLightPackets(Buffer.concat([connack, publish]), (p) => none.push(p)), connack.length)
  assert.deepEqual(none.map((p) => p.cmd), ['connack'])
  // Half a CONNACK, or only its first byte: nothing read.
  assert.equal(readLightPackets(connack.subarray(0, 3), () => assert.fail('read half a packet')), 0)
  assert.equal(readLightPackets(connack.subarray(0, 1), () => assert.fail('read one byte')), 0)
  // A SUBACK of 200 filters has a two-byte remaining length: the parser's.
  assert.equal(readLightPackets(generate({ cmd: 'suback', messageId: 1, granted: Array.from({ length: 200 }, () => 1) }), () => assert.fail('read a long SUBACK')), 0)
  // A CONNACK with reserved flag bits set is not one the reader vouches for.
  assert.equal(readLightPackets(Buffer.from([0x20, 0x02, 0x02, 0x00]), () => assert.fail('read a malformed CONNACK')), 0)
})

test('a light connection gets its CONNACK, SUBACK and a PUBLISH however the server splits and joins them', { timeout: 60_000 }, async (t) => {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.setNoDelay(true)
    const parse = parser({ protocolVersion: 4 })
    parse.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        // The CONNACK in two writes.
        const connack = generate({ cmd: 'connack', returnCode: 0, sessionPresent: false })
        socket.write(connack.subarray(0, 1))
        setImmediate(() => socket.write(connack.subarray(1)))
      } else if (packet.cmd === 'subscribe') {
        // SUBACK and a PUBLISH in one write, then a PINGRESP split from its own first byte.
        socket.write(Buffer.concat([
          generate({ cmd: 'suback', messageId: packet.messageId, granted: packet.subscriptions.map((s) => s.qos) }),
          generate({ cmd: 'publish', topic: 'devices/s/down', payload: Buffer.from('hello'), qos: 1, messageId: 9, dup: false, retain: false })
        ]))
      } else if (packet.cmd === 'puback') {
        socket.write(generate({ cmd: 'publish', topic: 'broadcast/all', payload: Buffer.from('again'), qos: 0, dup: false, retain: false }))
      }
    })
    socket.on('data', (chunk) => { parse.parse(chunk) })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  const connect = createLightConnector()
  const conn = await bounded('connect', connect({ url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`, clientId: 's', username: 's', password: 'x', keepalive: 0, clean: true, localAddress: undefined, localPort: undefined, timeoutMs: 30_000 }))
  const messages: string[] = []
  conn.onMessage((topic, payload) => messages.push(`${topic} ${payload.toString()}`))
  assert.deepEqual(await bounded('subscribe', conn.subscribe(['devices/s/down', 'broadcast/all'], 1)), [1, 1])
  // The QoS 1 PUBLISH is acknowledged (the server answers the PUBACK with a second PUBLISH).
  await waitUntil('both messages', () => messages.length === 2, 30_000, 10)
  assert.deepEqual(messages, ['devices/s/down hello', 'broadcast/all again'])
  conn.end()
})

/** An HTTP server that answers with `handler`, counting the connections it accepted. */
async function httpServer (t: { after: (fn: () => Promise<void>) => void }, handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ url: string, connections: () => number }> {
  let connections = 0
  const server = createHttpServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => handler(req, res, body))
  })
  server.on('connection', () => { connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/base/`, connections: () => connections }
}

const simHttpError = (status: number, text: RegExp) => (err: unknown): boolean => err instanceof SimError && err.code === 'SIM_ERR_HTTP' && err.status === status && text.test(err.message)

test('HTTP calls parse the answer (none when the body is empty), keep one connection for calls in a row, and give refusals and bad bodies as SIM_ERR_HTTP with the status', { timeout: 60_000 }, async (t) => {
  const seen: string[] = []
  const { url, connections } = await httpServer(t, (req, res, body) => {
    seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? '-'} ${body}`)
    res.setHeader('content-type', 'application/json')
    if (req.url === '/base/v1/devices/ok/token') {
      // A reply in two parts, split inside a two-byte character.
      const text = Buffer.from(JSON.stringify({ token: 'tök', expiresAt: 5, broker: { nodeId: 'n', mqtt: 'mqtt://127.0.0.1:1' } }))
      const cut = text.indexOf(Buffer.from('ö')) + 1
      res.write(text.subarray(0, cut))
      setImmediate(() => res.end(text.subarray(cut)))
    } else if (req.url === '/base/v1/admin/push/p?limit=1') {
      res.statusCode = 204
      res.end()
    } else if (req.url === '/base/v1/devices/busy/token') {
      res.statusCode = 429
      res.end('{"error":"IOT_ERR_RATE","message":"slow down"}')
    } else {
      res.end('{not json')
    }
  })
  const api = createHttpApi(url, { adminKey: 'k' })
  for (let i = 0; i < 20; i++) assert.deepEqual(await bounded('token', api.token('ok', 's3cret')), { token: 'tök', expiresAt: 5, broker: { nodeId: 'n', mqtt: 'mqtt://127.0.0.1:1' } })
  assert.equal(seen[0], 'POST /base/v1/devices/ok/token application/json {"secret":"s3cret"}')
  // A call resolves as its answer ends, a moment before the pool counts that connection free again, so the next
  // call may open a second one; never one per call.
  assert.ok(connections() <= 2, `${connections()} connections for 20 calls in a row`)
  // An answer without a body is undefined to the caller.
  assert.equal(await bounded('push status', api.pushStatus('p')), undefined)
  await assert.rejects(api.token('busy', 's'), simHttpError(429, /POST \/v1\/devices\/busy\/token: 429 .*IOT_ERR_RATE/))
  await assert.rejects(api.nodes(), simHttpError(200, /bad JSON/))
  assert.match(seen[seen.length - 1] as string, /^GET \/base\/v1\/admin\/nodes - $/)
})

test('an HTTP call to a server that never answers, or to nothing, fails as SIM_ERR_HTTP with status 0', { timeout: 60_000 }, async (t) => {
  const { url } = await httpServer(t, () => { /* never answers */ })
  const api = createHttpApi(url, {})
  await assert.rejects(bounded('no answer', api.token('d', 's'), 50_000), simHttpError(0, /POST \/v1\/devices\/d\/token: .*timeout/i))
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as { port: number }).port
  await new Promise((resolve) => closed.close(resolve))
  await assert.rejects(createHttpApi(`http://127.0.0.1:${port}`, {}).token('d', 's'), simHttpError(0, /ECONNREFUSED/))
})
