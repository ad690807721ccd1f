import assert from 'node:assert/strict'
import { test } from 'node:test'
import { eachWithLimit } from '../../src/shared/each-with-limit.ts'

/** Steps that each wait until the test ends them, so the test sees how many are in flight at once. */
function heldSteps (): { started: number[], inFlight: () => number, finish: (item: number, err?: Error) => void, step: (item: number) => Promise<void>, next: () => Promise<void> } {
  const started: number[] = []
  const enders = new Map<number, (err?: Error) => void>()
  let wake = (): void => {}
  return {
    started,
    inFlight: () => enders.size,
    finish (item, err) {
      const end = enders.get(item)
      enders.delete(item)
      end?.(err)
    },
    async step (item) {
      started.push(item)
      await new Promise<void>((resolve, reject) => {
        enders.set(item, (err) => { if (err === undefined) resolve(); else reject(err) })
        wake()
      })
    },
    next: async () => { await new Promise<void>((resolve) => { wake = resolve }) }
  }
}

test('eachWithLimit keeps at most `limit` steps in flight, starts them in order, and resolves once every step has', { timeout: 10_000 }, async () => {
  const h = heldSteps()
  let done = false
  const run = eachWithLimit([0, 1, 2, 3, 4], 2, h.step).then(() => { done = true })
  while (h.inFlight() < 2) await h.next()
  assert.deepEqual(h.started, [0, 1])
  const third = h.next()
  h.finish(1)
  await third
  assert.deepEqual(h.started, [0, 1, 2], 'a finished step frees its place for the next item')
  assert.equal(h.inFlight(), 2)
  for (const item of [0, 2]) {
    const another = h.next()
    h.finish(item)
    await another
  }
  assert.deepEqual(h.started, [0, 1, 2, 3, 4])
  h.finish(3)
  assert.equal(done, false)
  h.finish(4)
  await run
  assert.equal(done, true)
})

test('eachWithLimit rejects with a failed step and starts no further items', { timeout: 10_000 }, async () => {
  const h = heldSteps()
  const run = eachWithLimit([0, 1, 2, 3], 1, h.step)
  while (h.inFlight() < 1) await h.next()
  h.finish(0, new Error('no answer'))
  await assert.rejects(run, /no answer/)
  assert.deepEqual(h.started, [0])
})

test('eachWithLimit with no items resolves at once', async () => {
  await eachWithLimit([], 8, async () => { throw new Error('not called') })
})
