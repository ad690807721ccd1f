import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRequestGate, type RequestGate } from '../../src/shared/request-gate.ts'
import { isPushlineError } from '../../src/shared/errors.ts'

/** A piece of work that runs until its test lets it end. */
function held (): { readonly started: Promise<void>, readonly work: () => Promise<string>, finish: (v: string) => void, fail: (e: Error) => void } {
  let markStarted = (): void => {}
  const started = new Promise<void>((resolve) => { markStarted = resolve })
  let finish: (v: string) => void = () => {}
  let fail: (e: Error) => void = () => {}
  const done = new Promise<string>((resolve, reject) => { finish = resolve; fail = reject })
  return { started, work: async () => { markStarted(); return await done }, finish: (v) => finish(v), fail: (e) => fail(e) }
}

/** Starts a held piece of work on the gate and waits until it holds its slot. */
async function occupy (gate: RequestGate): Promise<{ readonly work: ReturnType<typeof held>, readonly running: Promise<string> }> {
  const work = held()
  const running = gate.run(work.work)
  await work.started
  return { work, running }
}

test('the gate runs at most `limit` at once, queues up to `queue` in order, refuses beyond, and frees a slot on failure too', { timeout: 10_000 }, async () => {
  const changes: Array<[number, number]> = []
  let refusals = 0
  const gate = createRequestGate({ what: 'widgets', limit: 2, queue: 2, onChange: (f, q) => changes.push([f, q]), onRefused: () => { refusals++ } })
  const w = [held(), held(), held(), held()]
  const order: number[] = []
  const runs = w.map(async (h, i) => await gate.run(async () => { order.push(i); return await h.work() }))
  await Promise.all([w[0]?.started, w[1]?.started])
  assert.deepEqual([gate.inFlight, gate.queued], [2, 2])
  await assert.rejects(gate.run(async () => 'never'), (err) => isPushlineError(err, 'IOT_ERR_BUSY') && err.details?.retryAfterSeconds === 1 && err.message.includes('too many widgets in progress'))
  assert.equal(refusals, 1)
  w[0]?.fail(new Error('boom'))
  await assert.rejects(runs[0] as Promise<string>, /boom/)
  await w[2]?.started
  assert.deepEqual([gate.inFlight, gate.queued], [2, 1], 'the failed one gave its slot to the first waiting')
  w[1]?.finish('b')
  w[2]?.finish('c')
  await w[3]?.started
  w[3]?.finish('d')
  assert.deepEqual(await Promise.all(runs.slice(1)), ['b', 'c', 'd'])
  assert.deepEqual(order, [0, 1, 2, 3], 'first in, first out')
  assert.deepEqual([gate.inFlight, gate.queued], [0, 0])
  assert.deepEqual(changes.at(-1), [0, 0])
})

test('limit 0: no bound, the gate only counts', { timeout: 10_000 }, async () => {
  const gate = createRequestGate({ what: 'widgets', limit: 0, queue: 0 })
  const w = Array.from({ length: 5 }, () => held())
  const runs = w.map(async (h) => await gate.run(h.work))
  await Promise.all(w.map((h) => h.started))
  assert.equal(gate.inFlight, 5)
  for (const h of w) h.finish('x')
  await Promise.all(runs)
  assert.equal(gate.inFlight, 0)
})

test('a request that waits `maxWaitMs` is refused with reason waited_too_long, before its work, and the queue goes on', { timeout: 10_000 }, async () => {
  const refusals: string[] = []
  const gate = createRequestGate({ what: 'widgets', limit: 1, queue: 4, maxWaitMs: 1, onRefused: (why) => refusals.push(why) })
  const { work: first, running } = await occupy(gate)
  // The first holds the only slot until it is told to finish, so the second can only leave the queue by expiring.
  let ran = false
  await assert.rejects(gate.run(async () => { ran = true }), (err) => isPushlineError(err, 'IOT_ERR_BUSY') && err.details?.reason === 'waited_too_long' &&
    err.details?.retryAfterSeconds === 1 && err.message.includes('widgets'))
  assert.equal(ran, false)
  assert.deepEqual(refusals, ['waited_too_long'])
  assert.deepEqual([gate.inFlight, gate.queued], [1, 0])
  first.finish('a')
  assert.equal(await running, 'a')
  assert.deepEqual([gate.inFlight, gate.queued], [0, 0])
  assert.equal(await gate.run(async () => 'free again'), 'free again')
})

test('a full queue still refuses at once with reason queue_full while a wait bound is set', { timeout: 10_000 }, async () => {
  const refusals: string[] = []
  const gate = createRequestGate({ what: 'widgets', limit: 1, queue: 1, maxWaitMs: 600_000, onRefused: (why) => refusals.push(why) })
  const { work: first, running } = await occupy(gate)
  const second = held()
  const waiting = gate.run(second.work)
  await assert.rejects(gate.run(async () => 'never'), (err) => isPushlineError(err, 'IOT_ERR_BUSY') && err.details?.reason === 'queue_full')
  assert.deepEqual(refusals, ['queue_full'])
  first.finish('a')
  await second.started
  second.finish('b')
  assert.deepEqual(await Promise.all([running, waiting]), ['a', 'b'])
})

test('a request whose signal aborts while it waits leaves the queue without its work; the next one gets the slot', { timeout: 10_000 }, async () => {
  let abandoned = 0
  const changes: Array<[number, number]> = []
  const gate = createRequestGate({ what: 'widgets', limit: 1, queue: 4, onAbandoned: () => { abandoned++ }, onChange: (f, q) => changes.push([f, q]) })
  const { work: first, running } = await occupy(gate)
  const gone = new AbortController()
  let ran = false
  const dropped = gate.run(async () => { ran = true }, gone.signal)
  const third = held()
  const next = gate.run(third.work)
  assert.deepEqual([gate.inFlight, gate.queued], [1, 2])
  gone.abort()
  await assert.rejects(dropped, (err) => err instanceof Error && err.name === 'AbortError')
  assert.equal(abandoned, 1)
  assert.deepEqual([gate.inFlight, gate.queued], [1, 1], 'the abandoned one left the queue at once')
  assert.deepEqual(changes.at(-1), [1, 1])
  first.finish('a')
  await third.started
  third.finish('c')
  assert.deepEqual(await Promise.all([running, next]), ['a', 'c'])
  assert.equal(ran, false, 'the abandoned work never ran')
  // Aborted before the call: refused at once, counted the same way.
  await assert.rejects(gate.run(async () => { ran = true }, AbortSignal.abort()), (err) => err instanceof Error && err.name === 'AbortError')
  assert.equal(ran, false)
  assert.equal(abandoned, 2)
  assert.deepEqual([gate.inFlight, gate.queued], [0, 0])
})

test('many abandoned waiters: the queue keeps its order and its count', { timeout: 10_000 }, async () => {
  const gate = createRequestGate({ what: 'widgets', limit: 1, queue: 10_000 })
  const { work: first, running } = await occupy(gate)
  const order: number[] = []
  const controllers = Array.from({ length: 5000 }, () => new AbortController())
  const runs = controllers.map(async (c, i) => await gate.run(async () => { order.push(i) }, c.signal).catch(() => undefined))
  for (const [i, c] of controllers.entries()) if (i % 3 !== 0) c.abort()
  const kept = controllers.map((_, i) => i).filter((i) => i % 3 === 0)
  assert.equal(gate.queued, kept.length)
  first.finish('a')
  await running
  await Promise.all(runs)
  assert.deepEqual(order, kept)
  assert.deepEqual([gate.inFlight, gate.queued], [0, 0])
})

test('full tells whether a request run now would wait: only then does it need a signal for its client leaving', { timeout: 10_000 }, async () => {
  const gate = createRequestGate({ what: 'widgets', limit: 1, queue: 1 })
  assert.equal(gate.full, false)
  const first = await occupy(gate)
  assert.equal(gate.full, true)
  first.work.finish('a')
  assert.equal(await first.running, 'a')
  assert.equal(gate.full, false)
  const unbounded = createRequestGate({ what: 'widgets', limit: 0, queue: 0 })
  const many = [await occupy(unbounded), await occupy(unbounded)]
  assert.equal(unbounded.full, false, 'without a bound nothing waits')
  for (const m of many) m.work.finish('x')
  await Promise.all(many.map(async (m) => await m.running))
})
