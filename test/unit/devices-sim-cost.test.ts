// What keeps the simulator's own CPU per device flat as the fleet grows: one keepalive wheel per worker instead of
// a timer per connection, a limiter queue that does not shift, histograms encoded once per change.

import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { test } from 'node:test'
import { generate, parser, type Packet } from 'mqtt-packet'
import { createLightConnector } from '../../devices-sim/src/engine-light.ts'
import { LatencyHistogram, summarize } from '../../devices-sim/src/histogram.ts'
import { KeepaliveWheel, type WheelTimers } from '../../devices-sim/src/keepalive-wheel.ts'
import { Limiter } from '../../devices-sim/src/limiter.ts'
import { FIRST_LOCAL_PORT, LAST_LOCAL_PORT, sourceEndpoints } from '../../devices-sim/src/source-endpoints.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'

/** Interval timers that fire only when the test says so. */
function manualTimers (): WheelTimers & { readonly armed: number, readonly everyMs: number[], fire (): void } {
  const live = new Map<object, () => void>()
  const everyMs: number[] = []
  return {
    setInterval (fn, ms) {
      const handle = {}
      live.set(handle, fn)
      everyMs.push(ms)
      return handle
    },
    clearInterval (handle) { live.delete(handle as object) },
    get armed () { return live.size },
    everyMs,
    fire () { for (const fn of [...live.values()]) fn() }
  }
}

test('the keepalive wheel pings each member once per turn, a turn lasting the period to a quarter more, on one timer while it has members', () => {
  const timers = manualTimers()
  const wheel = new KeepaliveWheel(45_000, timers)
  const pings = new Map<string, number[]>()
  const member = (name: string): { ping: () => void } => ({ ping () { pings.set(name, [...(pings.get(name) ?? []), tick]) } })
  let tick = 0
  const leaveA = wheel.add(member('a'))
  const tickMs = timers.everyMs[0] as number
  assert.equal(tickMs, 1000)
  tick++
  timers.fire()
  wheel.add(member('b'))
  for (tick = 2; tick <= 200; tick++) {
    timers.fire()
    if (tick === 150) leaveA()
  }
  assert.equal(timers.armed, 1, 'one timer for every member')
  assert.equal(timers.everyMs.length, 1)
  for (const [name, at] of pings) {
    const gaps = at.slice(1).map((t, i) => (t - (at[i] as number)) * tickMs)
    assert.ok(gaps.length >= 2, `${name} pinged repeatedly`)
    for (const gap of gaps) assert.ok(gap >= 45_000 && gap <= 45_000 * 1.25, `${name}: ${gap} ms between pings`)
  }
  assert.ok((pings.get('a') as number[]).every((t) => t <= 150), 'no ping after leaving the wheel')
  assert.ok((pings.get('b') as number[]).some((t) => t > 150))
  assert.equal(wheel.size, 1)
  assert.throws(() => new KeepaliveWheel(0, timers), RangeError)
})

test('the keepalive wheel stops its timer when the last member leaves and starts it again for the next', () => {
  const timers = manualTimers()
  const wheel = new KeepaliveWheel(750, timers)
  const leave = wheel.add({ ping () {} })
  assert.equal(timers.armed, 1)
  assert.equal(timers.everyMs[0], 187.5, 'a short period gets a finer tick')
  leave()
  leave()
  assert.equal(timers.armed, 0)
  assert.equal(wheel.size, 0)
  wheel.add({ ping () {} })
  assert.equal(timers.armed, 1)
})

/** A port nothing listens on at `address` (the kernel's choice, released at once). */
async function unusedPort (address: string): Promise<number> {
  const probe: Server = createServer()
  await new Promise<void>((resolve) => probe.listen(0, address, resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/** An MQTT server that accepts every CONNECT and records where each connection came from and its PINGREQs. */
async function mqttServer (t: { after: (fn: () => Promise<void>) => void }, listenPort = 0): Promise<{ port: number, peers: Map<string, { address: string, port: number }>, pingsBy: Map<string, number>, stop: () => Promise<void> }> {
  const peers = new Map<string, { address: string, port: number }>()
  const pingsBy = new Map<string, number>()
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    const parse = parser({ protocolVersion: 4 })
    let clientId = ''
    parse.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        clientId = packet.clientId
        peers.set(clientId, { address: socket.remoteAddress as string, port: socket.remotePort as number })
        socket.write(generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
      } else if (packet.cmd === 'pingreq') {
        pingsBy.set(clientId, (pingsBy.get(clientId) ?? 0) + 1)
        socket.write(generate({ cmd: 'pingresp' }))
      }
    })
    socket.on('data', (chunk) => { parse.parse(chunk) })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve))
  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= new Promise((resolve) => {
      server.close(() => resolve())
      for (const s of sockets) s.destroy()
    })
    await stopped
  }
  t.after(stop)
  return { port: (server.address() as { port: number }).port, peers, pingsBy, stop }
}

test('light connections of one connector send PINGREQ through the shared wheel until they end', { timeout: 60_000 }, async (t) => {
  const { port, pingsBy } = await mqttServer(t)
  const connect = createLightConnector()
  const params = (clientId: string): Parameters<typeof connect>[0] => ({ url: `mqtt://127.0.0.1:${port}`, clientId, username: clientId, password: 'x', keepalive: 1, clean: true, localAddress: undefined, localPort: undefined, timeoutMs: 30_000 })
  const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timeouts()
  const ids = Array.from({ length: 50 }, (_, i) => `d${i + 1}`)
  const conns = await bounded('connects', Promise.all(ids.map(async (id) => await connect(params(id)))))
  // Their keepalive is one timer, and not one that holds the process open.
  assert.ok(timeouts() <= before, `${timeouts() - before} more timers for 50 connections`)
  await waitUntil('every connection pinged three times', () => ids.every((id) => (pingsBy.get(id) ?? 0) >= 3), 30_000, 20)
  for (const c of conns) c.end()
})

test('the limiter runs at most its bound at once and starts waiters in the order they came, through thousands of them', { timeout: 60_000 }, async () => {
  const limiter = new Limiter(3)
  let active = 0
  let most = 0
  const started: number[] = []
  const gates: Array<() => void> = []
  const runs = Array.from({ length: 5000 }, async (_, i) => await limiter.run(async () => {
    started.push(i)
    active++
    most = Math.max(most, active)
    await new Promise<void>((resolve) => gates.push(resolve))
    active--
    return i
  }))
  assert.equal(limiter.waiting, 4997)
  // Release one task at a time, each as soon as it has started.
  for (let released = 0; released < 5000; released++) {
    await waitUntil('a task waiting at its gate', () => gates.length > 0, 30_000, 1)
    ;(gates.shift() as () => void)()
  }
  assert.deepEqual(await Promise.all(runs), Array.from({ length: 5000 }, (_, i) => i))
  assert.deepEqual(started, Array.from({ length: 5000 }, (_, i) => i))
  assert.equal(most, 3)
  assert.equal(limiter.waiting, 0)
})

test('a histogram sent again after new values carries them (its encoded form is reused only while nothing changed)', () => {
  const h = new LatencyHistogram()
  for (let i = 1; i <= 100; i++) h.record(i)
  const first = JSON.stringify(h)
  assert.equal(JSON.stringify(h), first)
  for (let i = 101; i <= 200; i++) h.record(i)
  const again = LatencyHistogram.from(JSON.parse(JSON.stringify(h)))
  assert.deepEqual(summarize(again), summarize(h))
  const other = new LatencyHistogram()
  other.record(1000)
  h.add(other)
  assert.deepEqual(summarize(LatencyHistogram.from(JSON.parse(JSON.stringify(h)))), summarize(h))
  assert.equal(LatencyHistogram.from(JSON.parse(JSON.stringify(h))).quantile(1), 1000)
})

test('with source addresses every device of the fleet gets an address and a local port no other device has, below the ephemeral range', () => {
  const addresses = ['127.0.0.2', '127.0.0.3', '127.0.0.4']
  // Three workers' shares, as the coordinator hands them out.
  const shares = [sourceEndpoints(addresses, 0, 4), sourceEndpoints(addresses, 4, 3), sourceEndpoints(addresses, 7, 3)]
  const all = shares.flat()
  assert.deepEqual(all.slice(0, 4), [
    { address: '127.0.0.2', port: FIRST_LOCAL_PORT },
    { address: '127.0.0.3', port: FIRST_LOCAL_PORT },
    { address: '127.0.0.4', port: FIRST_LOCAL_PORT },
    { address: '127.0.0.2', port: FIRST_LOCAL_PORT + 1 }
  ])
  assert.equal(new Set(all.map((e) => `${e.address}:${e.port}`)).size, 10)
  assert.deepEqual(sourceEndpoints([], 0, 5), [])
  // Past the numbered ports the kernel chooses.
  const perAddress = LAST_LOCAL_PORT - FIRST_LOCAL_PORT + 1
  assert.deepEqual(sourceEndpoints(['127.0.0.2'], perAddress - 1, 2), [{ address: '127.0.0.2', port: LAST_LOCAL_PORT }, { address: '127.0.0.2', port: undefined }])
})

test('a light connection binds the source port it was given, and another one when a listener holds that port', { timeout: 60_000 }, async (t) => {
  const { port, peers } = await mqttServer(t)
  const connect = createLightConnector()
  const params = (clientId: string, localPort: number): Parameters<typeof connect>[0] => ({ url: `mqtt://127.0.0.1:${port}`, clientId, username: clientId, password: 'x', keepalive: 0, clean: true, localAddress: '127.0.0.2', localPort, timeoutMs: 30_000 })
  // A port of the numbered range that nothing holds, and one that a listener on the same address holds.
  const holder: Server = createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.2', resolve))
  t.after(async () => { await new Promise((resolve) => holder.close(resolve)) })
  const held = (holder.address() as { port: number }).port
  const free = await unusedPort('127.0.0.2')

  const a = await bounded('connect from a free port', connect(params('a', free)))
  const b = await bounded('connect from a held port', connect(params('b', held)))
  assert.deepEqual(peers.get('a'), { address: '127.0.0.2', port: free })
  assert.equal(peers.get('b')?.address, '127.0.0.2')
  assert.notEqual(peers.get('b')?.port, held)
  a.end()
  b.end()
})

test('a device reconnects from its source port to a node started again on the same port after the node closed every connection', { timeout: 60_000 }, async (t) => {
  const first = await mqttServer(t)
  const connect = createLightConnector()
  const localPort = await unusedPort('127.0.0.2')
  const params = { url: `mqtt://127.0.0.1:${first.port}`, clientId: 'r', username: 'r', password: 'x', keepalive: 0, clean: true, localAddress: '127.0.0.2', localPort, timeoutMs: 30_000 }
  const conn = await bounded('first connect', connect(params))
  const closed = new Promise<void>((resolve) => conn.onClose(() => resolve()))
  // As a SIGKILLed node does: the server side closes first, then the same port listens again.
  await first.stop()
  await bounded('the device sees its connection close', closed)
  const again = await mqttServer(t, first.port)
  const back = await bounded('reconnect', connect(params))
  assert.deepEqual(again.peers.get('r'), { address: '127.0.0.2', port: localPort })
  back.end()
})
