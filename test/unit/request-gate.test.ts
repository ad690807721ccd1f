import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRequestGate } from '../../src/shared/request-gate.ts'
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
