import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { test } from 'node:test'
import { generate } from 'mqtt-packet'
import { bounded } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'

// The tests' MQTT helper itself: a PUBLISH that arrives in the same TCP read as the CONNACK (a stored queue or a
// catch-up written right after it) still reaches a listener added after connectDevice resolves.

test('connectDevice keeps messages that arrive with the CONNACK for the first listener, in order', { timeout: 30_000 }, async (t) => {
  const sockets: Socket[] = []
  const server = createServer((socket) => {
    sockets.push(socket)
    socket.once('data', () => {
      const publish = (n: number): Buffer => generate({ cmd: 'publish', topic: 'devices/early/down', payload: Buffer.from(`m${n}`), qos: 0, retain: false, dup: false })
      socket.write(Buffer.concat([generate({ cmd: 'connack', returnCode: 0, sessionPresent: true }), publish(1), publish(2)]))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { for (const s of sockets) s.destroy(); server.close() })
  const client = await connectDevice(t, `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, 'early', 'token')
  const got: string[] = []
  const two = new Promise<void>((resolve) => client.on('message', (_topic, payload) => { got.push(payload.toString()); if (got.length === 2) resolve() }))
  await bounded('the two messages sent with the CONNACK', two, 10_000)
  assert.deepEqual(got, ['m1', 'm2'])
  // Later messages go straight to the listener, after the kept ones.
  const third = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())))
  sockets[0]?.write(generate({ cmd: 'publish', topic: 'devices/early/down', payload: Buffer.from('m3'), qos: 0, retain: false, dup: false }))
  assert.equal(await bounded('a message after the listener', third, 10_000), 'm3')
})
