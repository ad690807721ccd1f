import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { test } from 'node:test'
import { watchEventLoopDelay } from '../../src/shared/event-loop-delay.ts'

/** Holds the event loop for `ms`, synchronously. */
function hold (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until);
}

test('a turn that held the event loop is read as at least its length, in the window it fell in', { timeout: 30_000 }, async (t) => {
  const delay = watchEventLoopDelay(20)
  t.after(() => { delay.stop() })
  delay.take()
  hold(300)
  // Read in the held turn itself, and in a later turn (after the sampling timer has seen it).
  assert.ok(delay.take() >= 280, 'the turn in progress')
  await nextTurn()
  hold(400)
  await nextTurn()
  await nextTurn()
  assert.ok(delay.take() >= 380, 'a turn that has ended')
})
