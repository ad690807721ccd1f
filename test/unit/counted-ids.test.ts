import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createCountedIds } from '../../src/shared/counted-ids.ts'
import { traceIdFromTraceparent } from '../../src/shared/trace.ts'

const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
// More than a few heads (4,096 ids each), so that head changes are crossed.
const COUNT = 3 * 4096 + 17

test('uplink msg-ids are version-8 UUIDs, all different, across head changes', () => {
  const next = createCountedIds('uuid')
  const ids = Array.from({ length: COUNT }, next)
  assert.equal(new Set(ids).size, COUNT)
  for (const id of ids) assert.match(id, UUID_V8)
  // The counter is the last 12 hex digits, in order: consecutive ids follow each other.
  assert.equal(parseInt((ids[4096] as string).slice(-12), 16), parseInt((ids[4095] as string).slice(-12), 16) + 1)
})

test('trace ids are 32 hex digits that a traceparent carries, all different', () => {
  const next = createCountedIds('trace')
  const ids = Array.from({ length: COUNT }, next)
  assert.equal(new Set(ids).size, COUNT)
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{32}$/)
    assert.equal(traceIdFromTraceparent(`00-${id}-00f067aa0ba902b7-01`), id)
  }
})

test('two generators (two nodes, or a restart) draw different random parts', () => {
  for (const layout of ['uuid', 'trace'] as const) {
    const a = createCountedIds(layout)
    const b = createCountedIds(layout)
    const fromA = Array.from({ length: 100 }, a)
    const fromB = new Set(Array.from({ length: 100 }, b))
    for (const id of fromA) assert.equal(fromB.has(id), false, `${layout} id ${id} from both`)
  }
})
