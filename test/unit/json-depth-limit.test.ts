import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nestsDeeperThan } from '../../src/http/json-depth-limit.ts'

test('JSON nesting depth counts objects and arrays, not brackets inside strings', () => {
  assert.equal(nestsDeeperThan('{"a":[1,{"b":[]}]}', 4), false)
  assert.equal(nestsDeeperThan('{"a":[1,{"b":[]}]}', 3), true)
  assert.equal(nestsDeeperThan('[[[]],[[]]]', 3), false, 'siblings do not add up')
  assert.equal(nestsDeeperThan('{"s":"[[[[{{{{"}', 1), false)
  assert.equal(nestsDeeperThan('{"s":"a\\"[[[[","t":"\\\\"}', 1), false, 'escaped quotes and backslashes end no string early')
  assert.equal(nestsDeeperThan('"[[["', 0), false)
  assert.equal(nestsDeeperThan('['.repeat(65) + ']'.repeat(65), 64), true)
})
