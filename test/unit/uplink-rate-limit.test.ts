import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRateGate } from '../../src/broker/uplink-rate-limit.ts'
import { createLogThrottle } from '../../src/shared/log-throttle.ts'
import { manualClock } from '../helpers/clock.ts'

test('within its burst a connection is not slowed', () => {
  const gate = createRateGate({ perSecond: 10, burst: 5 })
  const ran: number[] = []
  for (let i = 0; i < 5; i++) assert.equal(gate.pass(() => ran.push(i)), false)
  assert.deepEqual(ran, [0, 1, 2, 3, 4], 'run at once, synchronously')
})

test('beyond its burst a connection is slowed to its rate, in order, and nothing is dropped', { timeout: 120_000 }, async () => {
  const gate = createRateGate({ perSecond: 200, burst: 4 })
  const start = Date.now()
  const ran: Array<{ i: number, at: number }> = []
  const delayed: boolean[] = []
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 24; i++) delayed.push(gate.pass(() => { ran.push({ i, at: Date.now() - start }); if (ran.length === 24) resolve() }))
  })
  assert.deepEqual(ran.map((r) => r.i), Array.from({ length: 24 }, (_, i) => i), 'every call ran, in order')
  assert.deepEqual(delayed, Array.from({ length: 24 }, (_, i) => i >= 4))
  // 20 calls over the burst at 200/s wait 100 ms in all (a timer may round down by a millisecond); how much
  // later a busy machine runs them says nothing about the gate.
  const last = (ran[23] as { at: number }).at
  assert.ok(last >= 99, `last call after ${last} ms`)
})

test('a quiet connection earns its burst back', { timeout: 120_000 }, async () => {
  const clock = manualClock(0)
  const gate = createRateGate({ perSecond: 1000, burst: 3 }, clock.now)
  for (let i = 0; i < 3; i++) gate.pass(() => {})
  clock.advance(3)
  const ran: number[] = []
  for (let i = 0; i < 3; i++) assert.equal(gate.pass(() => ran.push(i)), false)
  assert.deepEqual(ran, [0, 1, 2])
})

test('a throttled log line is written once per interval and tells how many it stood for', () => {
  let now = 0
  const log = createLogThrottle(1000, () => now)
  const emitted: number[] = []
  for (let i = 0; i < 5; i++) log((n) => emitted.push(n))
  now = 999
  log((n) => emitted.push(n))
  now = 1000
  log((n) => emitted.push(n))
  assert.deepEqual(emitted, [0, 5])
})
