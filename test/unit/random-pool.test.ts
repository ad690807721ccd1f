import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRandomPool } from '../../src/shared/random-pool.ts'

test('a random pool hands out each byte once: values are distinct across refills and of the asked length', { timeout: 10_000 }, () => {
  // 64 bytes: every third 32-byte value comes from a refill.
  const pool = createRandomPool(64)
  const values = Array.from({ length: 300 }, () => pool.base64url(32))
  assert.equal(new Set(values).size, values.length)
  assert.ok(values.every((v) => /^[A-Za-z0-9_-]{43}$/.test(v)))
  const spans = Array.from({ length: 300 }, () => pool.hex(8))
  assert.equal(new Set(spans).size, spans.length)
  assert.ok(spans.every((v) => /^[0-9a-f]{16}$/.test(v)))
})

test('a random pool does not repeat its buffer: two values taken side by side share no bytes at the seam', { timeout: 10_000 }, () => {
  const pool = createRandomPool(32)
  const a = Buffer.from(pool.base64url(32), 'base64url')
  const b = Buffer.from(pool.base64url(32), 'base64url')
  assert.notDeepEqual(a, b, 'the second value comes from a refilled buffer')
})

test('a random pool refuses a value larger than itself', { timeout: 10_000 }, () => {
  assert.throws(() => createRandomPool(16).base64url(32), RangeError)
})
