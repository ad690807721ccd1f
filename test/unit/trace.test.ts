import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRandomPool } from '../../src/shared/random-pool.ts'
import { newTraceId, traceIdFromTraceparent, traceparentFor } from '../../src/shared/trace.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

test('a valid W3C traceparent gives its trace id', () => {
  assert.equal(traceIdFromTraceparent(`00-${TRACE}-${PARENT}-01`), TRACE)
  assert.equal(traceIdFromTraceparent(`00-${TRACE}-${PARENT}-00`), TRACE, 'unsampled traces are still followed')
  assert.equal(traceIdFromTraceparent(` 00-${TRACE}-${PARENT}-01 `), TRACE)
  assert.equal(traceIdFromTraceparent(`01-${TRACE}-${PARENT}-01-future-field`), TRACE, 'a later version may add fields')
})

test('an absent or malformed traceparent gives no trace id', () => {
  const bad = [
    undefined,
    '',
    'garbage',
    `00-${TRACE}-${PARENT}`,
    `00-${TRACE.toUpperCase()}-${PARENT}-01`,
    `00-${TRACE.slice(1)}-${PARENT}-01`,
    `00-${'0'.repeat(32)}-${PARENT}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `ff-${TRACE}-${PARENT}-01`,
    `00-${TRACE}-${PARENT}-01-extra`
  ]
  for (const header of bad) assert.equal(traceIdFromTraceparent(header), undefined, String(header))
  assert.equal(traceIdFromTraceparent([`00-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01`]), undefined, 'a repeated header is ambiguous')
})

test('new trace ids are 32 lowercase hex digits and differ', () => {
  const ids = new Set(Array.from({ length: 1000 }, newTraceId))
  assert.equal(ids.size, 1000)
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/)
})

test('new trace ids drawn from a random pool are 32 lowercase hex digits, differ, and take 16 bytes each', () => {
  const pool = createRandomPool(256)
  const drawn: number[] = []
  const random = { ...pool, hex: (n: number) => { drawn.push(n); return pool.hex(n) } }
  const ids = new Set(Array.from({ length: 1000 }, () => newTraceId(random)))
  assert.equal(ids.size, 1000)
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/)
  assert.deepEqual(new Set(drawn), new Set([16]))
  assert.equal(drawn.length, 1000, 'every id comes from the pool')
})

test('a traceparent for a trace round-trips to the same trace id with a fresh span id', () => {
  const a = traceparentFor(TRACE)
  const b = traceparentFor(TRACE)
  assert.match(a, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`))
  assert.notEqual(a, b)
  assert.equal(traceIdFromTraceparent(a), TRACE)
})
