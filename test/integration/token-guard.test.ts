import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { createTokenGuard } from '../../src/registry/token-guard.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createRedisCounterStore } from '../../src/stores/redis-counter-store.ts'
import type { CounterStore } from '../../src/stores/counter-store.ts'
import { eventually } from '../helpers/eventually.ts'
import { connectRedis, uniquePrefix } from '../helpers/services.ts'

// The lock after repeated wrong credentials lasts the whole lockout from the failure that set it, not from the
// first failure counted (a fixed window from the first failure let a lock end early).

async function lockedUntil (guard: ReturnType<typeof createTokenGuard>, deviceId: string): Promise<number | undefined> {
  try {
    await guard.assertUnlocked(deviceId)
    return undefined
  } catch (err) {
    if (!isPushlineError(err, 'IOT_ERR_LOCKED')) throw err
    return err.details?.until as number
  }
}

test('memory store, injected clock: the lock lasts the lockout from the failure that set it, then lifts', { timeout: 10_000 }, async () => {
  let clock = 1_000_000
  const counters = createMemoryCounterStore(() => clock)
  const guard = createTokenGuard({ counters, devicePerMinute: 1000, addressPerMinute: 1000, maxFailures: 3, lockoutMs: 10_000, now: () => clock })
  const d = 'dev'
  await guard.failed(d)
  clock += 9000
  assert.equal(await lockedUntil(guard, d), undefined, 'one failure does not lock')
  await guard.failed(d)
  await guard.failed(d)
  assert.equal(await lockedUntil(guard, d), clock + 10_000)
  clock += 2000
  assert.equal(await lockedUntil(guard, d), 1_019_000, 'still locked after the first failure\'s window ended')
  await assert.rejects(guard.assertUnlocked(d), (err) => isPushlineError(err, 'IOT_ERR_LOCKED') && err.details?.retryAfterSeconds === 8)
  clock = 1_019_000
  assert.equal(await lockedUntil(guard, d), undefined, 'lifted after the lockout')
  await guard.failed(d)
  assert.equal(await lockedUntil(guard, d), undefined, 'the count started again with the lock')
})

test('Redis store: the lock lasts the lockout from the failure that set it', { timeout: 20_000 }, async (t) => {
  const counters = createRedisCounterStore({ redis: connectRedis(t), prefix: uniquePrefix() })
  const lockoutMs = 60_000
  const guard = createTokenGuard({ counters, devicePerMinute: 1000, addressPerMinute: 1000, maxFailures: 2, lockoutMs })
  const d = randomUUID()
  await guard.failed(d)
  const first = Date.now()
  // Lets the first failure's window age; the check below holds however long this and Redis take.
  assert.equal(await eventually(async () => Date.now() - first >= 1500, 10_000, 50), true)
  const beforeLock = Date.now()
  await guard.failed(d)
  const until = await lockedUntil(guard, d)
  assert.ok(until !== undefined, 'locked')
  // Redis gives the remaining time in whole ms: allow the rounding, nothing more.
  assert.ok(until >= beforeLock + lockoutMs - 2, `lock ends ${beforeLock + lockoutMs - until} ms before a full lockout from the locking failure`)
})

/** The store, counting the calls made to it. */
function counted (store: CounterStore): { store: CounterStore, calls: () => number } {
  let n = 0
  const wrapped: CounterStore = {
    hit: async (...a) => { n++; return await store.hit(...a) },
    peek: async (...a) => { n++; return await store.peek(...a) },
    reset: async (...a) => { n++; await store.reset(...a) },
    hitAndPeek: async (...a) => { n++; return await store.hitAndPeek(...a) }
  }
  return { store: wrapped, calls: () => n }
}

for (const kind of ['memory', 'Redis'] as const) {
  test(`${kind} store: a token request's limits and lock are one counter-store call, with the answers of admit and assertUnlocked in their order`, { timeout: 20_000 }, async (t) => {
    const base = kind === 'memory' ? createMemoryCounterStore() : createRedisCounterStore({ redis: connectRedis(t), prefix: uniquePrefix() })
    const { store, calls } = counted(base)
    const guard = createTokenGuard({ counters: store, devicePerMinute: 2, addressPerMinute: 4, maxFailures: 1, lockoutMs: 60_000 })
    const [d1, d2, d3] = [randomUUID(), randomUUID(), randomUUID()]
    assert.deepEqual(await guard.admitToken('10.0.0.1', d1), { failures: 0 })
    assert.equal(calls(), 1, 'one call for both rate limits, the lock and the failure count')
    await guard.admitToken('10.0.0.1', d1)
    await assert.rejects(guard.admitToken('10.0.0.1', d1), (err) => isPushlineError(err, 'IOT_ERR_RATE_LIMITED') && /device/.test(err.message))
    // A lock on d2 (one failure locks): refused as locked, after being counted.
    await guard.failed(d2)
    await assert.rejects(guard.admitToken('10.0.0.1', d2), (err) => isPushlineError(err, 'IOT_ERR_LOCKED'))
    // The address's fifth request: refused for the address, and d3's counter is not touched.
    await assert.rejects(guard.admitToken('10.0.0.1', d3), (err) => isPushlineError(err, 'IOT_ERR_RATE_LIMITED') && /address/.test(err.message))
    assert.equal((await base.peek(`rate-device:${d3}`)).count, 0)
    // Failures are reported, so that only a request that saw some clears them.
    const other = createTokenGuard({ counters: store, devicePerMinute: 100, addressPerMinute: 100, maxFailures: 5, lockoutMs: 60_000 })
    await other.failed(d3)
    await other.failed(d3)
    assert.deepEqual(await other.admitToken('10.0.0.2', d3), { failures: 2 })
  })
}
