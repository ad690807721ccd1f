import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { createTokenGuard } from '../../src/registry/token-guard.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createRedisCounterStore } from '../../src/stores/redis-counter-store.ts'
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
