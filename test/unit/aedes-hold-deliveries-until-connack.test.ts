import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Aedes, type Client } from 'aedes'
import { createConnackGate } from '../../src/broker/aedes/hold-deliveries-until-connack.ts'
import { clientInternals } from '../../src/broker/aedes/internals.ts'
import { connectPacket, openPacketPipe } from '../helpers/packet-pipe.ts'

test('a message routed to a client before its CONNACK is written after the CONNACK, not before', { timeout: 60_000 }, async (t) => {
  // The authenticate hook is where aedes waits (on Redis, in the platform): a message routed to the session's
  // restored subscription lands in that window. Here it is delivered from inside the hook, which answers only after
  // aedes's write of it has had its turn (deliver0 writes in a setImmediate, queued before the hook's own).
  const routeEarly = (client: Client): void => {
    clientInternals(client).deliver0({ cmd: 'publish', topic: 'devices/d-1/down', payload: Buffer.from('early'), qos: 0, retain: false, dup: false } as never, () => {})
  }
  const aedes = new Aedes({
    authenticate (client, _user, _pass, done) {
      routeEarly(client)
      setImmediate(() => { setImmediate(() => { done(null, true) }) })
    }
  })
  await aedes.listen()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => { resolve() }) }))
  const gate = createConnackGate(aedes)
  aedes.preConnect = (client, packet, done) => {
    gate.hold(client, packet)
    done(null, true)
  }

  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('d-1', { clean: false }))
  await pipe.next('publish')
  assert.deepEqual(pipe.received.map((p) => p.cmd), ['connack', 'publish'], 'CONNACK is the first packet on the connection [MQTT-3.2.0-1]')
})

test('a connection closed before its CONNACK releases what was held', { timeout: 60_000 }, async (t) => {
  const aedes = new Aedes({ authenticate () { /* never answers */ } })
  await aedes.listen()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => { resolve() }) }))
  const gate = createConnackGate(aedes)
  const pipe = openPacketPipe(aedes)
  gate.hold(pipe.client, { clean: false })
  const released = new Promise<void>((resolve) => {
    clientInternals(pipe.client).deliver0({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0 } as never, resolve)
  })
  pipe.send(connectPacket('d-2', { clean: false }))
  pipe.conn.destroy()
  await released
  assert.equal(pipe.received.length, 0)
})

test('a clean session is not held: its deliveries stay aedes\'s own', { timeout: 60_000 }, async (t) => {
  const aedes = new Aedes()
  await aedes.listen()
  t.after(() => new Promise<void>((resolve) => { aedes.close(() => { resolve() }) }))
  const gate = createConnackGate(aedes)
  const pipe = openPacketPipe(aedes)
  const c = clientInternals(pipe.client)
  const own = [c.deliver0, c.deliverQoS]
  gate.hold(pipe.client, { clean: true })
  assert.deepEqual([c.deliver0, c.deliverQoS], own)
  gate.hold(pipe.client, { clean: false })
  assert.notEqual(c.deliver0, own[0], 'a persistent session is held')
  pipe.conn.destroy()
})
