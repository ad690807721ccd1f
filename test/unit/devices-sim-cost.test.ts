// What keeps the simulator's own CPU per device flat as the fleet grows: one keepalive wheel per worker instead of
// a timer per connection, a limiter queue that does not shift, histograms encoded once per change.

import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import { generate, parser, type Packet } from 'mqtt-packet'
import { createLightConnector } from '../../devices-sim/src/engine-light.ts'
import { LatencyHistogram, summarize } from '../../devices-sim/src/histogram.ts'
import { KeepaliveWheel, type WheelTimers } from '../../devices-sim/src/keepalive-wheel.ts'
import { Limiter } from '../../devices-sim/src/limiter.ts'
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

test('light connections of one connector send PINGREQ through the shared wheel until they end', { timeout: 60_000 }, async (t) => {
  const pingsBy = new Map<string, number>()
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    const parse = parser({ protocolVersion: 4 })
    let clientId = ''
    parse.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        clientId = packet.clientId
        socket.write(generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
      } else if (packet.cmd === 'pingreq') {
        pingsBy.set(clientId, (pingsBy.get(clientId) ?? 0) + 1)
        socket.write(generate({ cmd: 'pingresp' }))
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
  const { port } = server.address() as { port: number }
  const connect = createLightConnector()
  const params = (clientId: string): Parameters<typeof connect>[0] => ({ url: `mqtt://127.0.0.1:${port}`, clientId, username: clientId, password: 'x', keepalive: 1, clean: true, localAddress: undefined, timeoutMs: 30_000 })
  const conns = await bounded('connects', Promise.all(['d1', 'd2', 'd3'].map(async (id) => await connect(params(id)))))
  await waitUntil('every connection pinged three times', () => ['d1', 'd2', 'd3'].every((id) => (pingsBy.get(id) ?? 0) >= 3), 30_000, 20)
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
