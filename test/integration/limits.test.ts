import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { connect as netConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { test } from 'node:test'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { bounded, eventually } from '../helpers/eventually.ts'
import { connectDevice, rawConnect } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'
import { makeCertificates } from '../helpers/tls.ts'

async function spooledPayloads (dataDir: string): Promise<string[]> {
  const out: string[] = []
  for await (const r of readSpool(join(dataDir, 'spool'))) out.push(r.payload.toString())
  return out
}

const refusedWith3 = (err: Error & { code?: number }): boolean => err.code === 3 && /server unavailable/i.test(err.message)

test('beyond PUSHLINE_MAX_CONNECTIONS a new connection gets CONNACK 3 and is closed; the open ones keep working and lose nothing', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_MAX_CONNECTIONS: '3' } })
  const devices = await Promise.all(['cap-1', 'cap-2', 'cap-3', 'cap-4'].map(async (id) => ({ id, ...await p.provision(id) })))
  const [d1, d2, d3, d4] = devices as [typeof devices[0], typeof devices[0], typeof devices[0], typeof devices[0]]
  const c1 = await connectDevice(t, p.mqttUrl, d1.id, d1.token)
  const c2 = await connectDevice(t, p.mqttUrl, d2.id, d2.token)
  const c3 = await connectDevice(t, p.mqttUrl, d3.id, d3.token)
  await c1.publishAsync('devices/cap-1/telemetry', 'before', { qos: 1 })

  await assert.rejects(mqtt.connectAsync(p.mqttUrl, { clientId: d4.id, username: d4.id, password: d4.token, reconnectPeriod: 0, connectTimeout: 5000 }), refusedWith3)
  // A bare socket sees exactly the CONNACK and then the close.
  const raw = await rawConnect(t, p.mqttPort ?? 0)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'cap-raw', clean: true, keepalive: 30 })
  const connack = await raw.next()
  assert.equal(connack.cmd, 'connack')
  assert.equal((connack as { returnCode?: number }).returnCode, 3)
  await bounded('the node to close the refused socket', raw.closed)
  // Over WebSocket the same.
  await assert.rejects(mqtt.connectAsync(p.wsUrl, { clientId: d4.id, username: d4.id, password: d4.token, reconnectPeriod: 0, connectTimeout: 5000 }), refusedWith3)
  assert.equal(await p.metric('pushline_connects_refused_total', { reason: 'max_connections' }), 3)

  // The three held connections were not disturbed.
  for (const [c, id] of [[c1, 'cap-1'], [c2, 'cap-2'], [c3, 'cap-3']] as const) {
    assert.equal(c.connected, true)
    await c.publishAsync(`devices/${id}/telemetry`, `after-${id}`, { qos: 1 })
  }
  assert.deepEqual((await spooledPayloads(p.dataDir)).sort(), ['after-cap-1', 'after-cap-2', 'after-cap-3', 'before'])

  // A freed place is taken again.
  await c3.endAsync()
  assert.ok(await eventually(async () => {
    try {
      const c4 = await connectDevice(t, p.mqttUrl, d4.id, d4.token)
      return c4.connected
    } catch { return false }
  }, 60_000, 200), 'a connection is accepted once one has closed')
})

test('connections beyond PUSHLINE_CONNECT_RATE_PER_SECOND and its burst are refused with CONNACK 3 until the bucket refills', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_CONNECT_RATE_PER_SECOND: '1', PUSHLINE_CONNECT_RATE_BURST: '2' } })
  const anon = (id: string): Promise<mqtt.MqttClient> => mqtt.connectAsync(p.mqttUrl, { clientId: id, reconnectPeriod: 0, connectTimeout: 5000 })
  const a = await anon('rate-a')
  t.after(() => a.endAsync(true))
  const b = await anon('rate-b')
  t.after(() => b.endAsync(true))
  await assert.rejects(anon('rate-c'), refusedWith3)
  assert.ok(await p.metric('pushline_connects_refused_total', { reason: 'connect_rate' }) >= 1)
  // One token a second: a later attempt gets in, and the earlier connections were never touched.
  assert.ok(await eventually(async () => {
    try {
      const c = await anon('rate-d')
      t.after(() => c.endAsync(true))
      return true
    } catch { return false }
  }, 30_000, 500))
  assert.equal(a.connected && b.connected, true)
})

test('a client asking for keepalive 0 or above the maximum is held to the maximum: silent it is closed, pinging it stays', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_KEEPALIVE_MAX_SECONDS: '2' } })
  const silent = await rawConnect(t, p.mqttPort ?? 0)
  silent.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ka-silent', clean: true, keepalive: 0 })
  assert.equal((await silent.next() as { returnCode?: number }).returnCode, 0, 'accepted, not refused with rc 6')
  const tooLong = await rawConnect(t, p.mqttPort ?? 0)
  tooLong.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ka-long', clean: true, keepalive: 3600 })
  assert.equal((await tooLong.next() as { returnCode?: number }).returnCode, 0)
  const pinging = await rawConnect(t, p.mqttPort ?? 0)
  pinging.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ka-pinging', clean: true, keepalive: 0 })
  assert.equal((await pinging.next() as { returnCode?: number }).returnCode, 0)
  const pings = setInterval(() => { pinging.send({ cmd: 'pingreq' }) }, 400)
  t.after(() => clearInterval(pings))
  let pingingClosed = false
  pinging.closed.then(() => { pingingClosed = true }, () => {})
  // Marker: a silent client connected after the pinging one is dropped later than the pinging one would be.
  const marker = await rawConnect(t, p.mqttPort ?? 0)
  marker.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ka-marker', clean: true, keepalive: 0 })
  assert.equal((await marker.next() as { returnCode?: number }).returnCode, 0)

  // Held to 2 s, a silent client goes after 1.5 × 2 s.
  await bounded('the silent keepalive-0 client to be closed', silent.closed)
  await bounded('the silent keepalive-3600 client to be closed', tooLong.closed)
  await bounded('the silent marker client to be closed', marker.closed)
  assert.equal(pingingClosed, false, 'a client that keeps talking stays connected')
})

test('a socket that never sends CONNECT, or never finishes its WebSocket upgrade, is closed after PUSHLINE_CONNECT_TIMEOUT_MS', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_CONNECT_TIMEOUT_MS: '500' } })
  const tcp = netConnect(p.mqttPort ?? 0, '127.0.0.1')
  t.after(() => { tcp.destroy() })
  tcp.on('error', () => {})
  tcp.resume()
  const tcpClosed = new Promise<void>((resolve) => tcp.once('close', () => resolve()))
  // An HTTP connection to the WebSocket listener that sends half a request line and then nothing.
  const ws = netConnect(p.wsPort ?? 0, '127.0.0.1')
  t.after(() => { ws.destroy() })
  ws.on('error', () => {})
  // Read what the node answers (a 408), so the close is seen.
  ws.resume()
  ws.write('GET /mqtt HTTP/1.1\r\n')
  const wsClosed = new Promise<void>((resolve) => ws.once('close', () => resolve()))
  await bounded('the silent TCP socket to be closed', tcpClosed)
  await bounded('the stalled WebSocket upgrade to be closed', wsClosed)
  // A real WebSocket client is still served.
  const client = new WebSocket(p.wsUrl, 'mqtt')
  t.after(() => { client.terminate() })
  await new Promise<void>((resolve, reject) => { client.once('open', () => resolve()); client.once('error', reject) })
})

test('a packet announcing more than the payload limit allows is not buffered: the connection is closed and counted, the node serves on', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_MAX_PAYLOAD_BYTES: '1024' } })
  const { token } = await p.provision('big-header')
  const raw = await rawConnect(t, p.mqttPort ?? 0)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'big-header', username: 'big-header', password: Buffer.from(token), clean: true, keepalive: 30 })
  assert.equal((await raw.next() as { returnCode?: number }).returnCode, 0)
  // PUBLISH QoS 0 whose remaining length says 100 MB; only the first bytes are ever sent.
  raw.socket.write(Buffer.from([0x30, 0x80, 0xc2, 0xd7, 0x2f, 0x00, 0x04, 0x61, 0x2f, 0x62, 0x63]))
  await bounded('the socket to be closed without waiting for 100 MB', raw.closed)
  assert.equal(await p.metric('pushline_uplinks_refused_total', { reason: 'packet_too_large' }), 1)
  const client = await connectDevice(t, p.mqttUrl, 'big-header', token)
  await client.publishAsync('devices/big-header/telemetry', 'fine', { qos: 1 })
  assert.deepEqual(await spooledPayloads(p.dataDir), ['fine'])
})

/**
 * Opens a WebSocket to /mqtt by hand, sends only the header of one binary frame announcing `announced` bytes and
 * resolves with the close code of the first frame the node answers with (undefined if the socket closes without one).
 */
async function announceWebSocketFrame (socket: Duplex, announced: number): Promise<number | undefined> {
  socket.on('error', () => {})
  let received = Buffer.alloc(0)
  let upgraded = false
  return await new Promise((resolve) => {
    socket.once('close', () => resolve(undefined))
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (!upgraded) {
        const end = received.indexOf('\r\n\r\n')
        if (end === -1) return
        assert.match(received.subarray(0, end).toString(), /^HTTP\/1\.1 101/)
        upgraded = true
        received = received.subarray(end + 4)
        const header = Buffer.alloc(14)
        header[0] = 0x82 // FIN, binary
        header[1] = 0x80 | 127 // masked, 64-bit length
        header.writeBigUInt64BE(BigInt(announced), 2)
        randomBytes(4).copy(header, 10)
        socket.write(header)
      }
      // A close frame from the server: 0x88, an unmasked length, then the two-byte code.
      if (received.length >= 4 && received[0] === 0x88) {
        resolve(received.readUInt16BE(2))
        socket.end()
      }
    })
    socket.write([
      'GET /mqtt HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', '', ''
    ].join('\r\n'))
  })
}

test('a WebSocket frame announcing more than the largest packet is refused at its header, before authentication, on the plain and the TLS listener', { timeout: 90_000 }, async (t) => {
  const certs = await makeCertificates(t)
  // The connect timeout is far above the test's wait: a close it causes (no CONNECT sent) comes without code 1009.
  const p = await startTestPlatform(t, {
    env: { PUSHLINE_MAX_PAYLOAD_BYTES: '1024', PUSHLINE_CONNECT_TIMEOUT_MS: '30000', PUSHLINE_TLS_CERT_FILE: certs.certFile, PUSHLINE_TLS_KEY_FILE: certs.keyFile, PUSHLINE_MQTTS_PORT: '0', PUSHLINE_WSS_PORT: '0' }
  })
  // 50 MB: under ws's own 100 MiB default, far over the node's largest packet (1,024 + 65,551 bytes).
  const announced = 50_000_000
  const plain = netConnect(p.wsPort ?? 0, '127.0.0.1')
  t.after(() => { plain.destroy() })
  assert.equal(await announceWebSocketFrame(plain, announced), 1009, 'plain WebSocket: closed with 1009 (message too big)')
  const secure = tlsConnect({ port: p.wssPort ?? 0, host: '127.0.0.1', ca: certs.ca, servername: 'localhost' })
  t.after(() => { secure.destroy() })
  await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject) })
  assert.equal(await announceWebSocketFrame(secure, announced), 1009, 'WebSocket over TLS: closed with 1009 (message too big)')
  assert.ok(await eventually(async () => await p.metric('pushline_uplinks_refused_total', { reason: 'packet_too_large' }) === 2, 10_000), 'both refusals counted')

  // A device whose packets fit is served on the same listener.
  const { token } = await p.provision('ws-fits')
  const client = await connectDevice(t, p.wsUrl, 'ws-fits', token)
  await client.publishAsync('devices/ws-fits/telemetry', Buffer.alloc(1024, 1), { qos: 1 })
  assert.equal((await spooledPayloads(p.dataDir)).length, 1)
})
