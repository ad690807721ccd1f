import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { test } from 'node:test'
import pino from 'pino'
import { closeRedis, createRedis } from '../../src/shared/redis.ts'
import { redisUrl } from '../helpers/services.ts'

// The command timeout of Pushline's Redis connections (src/shared/ioredis/time-out-unanswered-commands.ts): a reply
// that arrived while this process's event loop was held up past the timeout answers its command; a Redis that does
// not answer still fails commands with "Command timed out".

const TIMEOUT_MS = 300
const silent = pino({ level: 'silent' })

/** Runs redis-cli against the test Redis, synchronously: the event loop of this process stays held meanwhile. */
function redisCli (...args: string[]): string {
  return execFileSync('redis-cli', ['-u', redisUrl(), ...args], { encoding: 'utf8', timeout: 10_000 }).trim()
}

test('a reply that arrived while the event loop was held past the timeout answers its command', { timeout: 30_000 }, async (t) => {
  const redis = createRedis({ kind: 'url', url: redisUrl(), password: undefined, commandTimeoutMs: TIMEOUT_MS }, silent, 'test-stall')
  t.after(() => closeRedis(redis))
  await redis.ping()
  const key = `t-stall:${randomUUID()}`
  t.after(() => { redisCli('DEL', key) })
  const reply = redis.set(key, 'v')
  const sentAt = performance.now()
  // Held from here on, synchronously. A second connection proves Redis ran the SET; one more round trip on it proves
  // Redis has finished the turn that wrote the SET's reply (it writes replies before it reads the next command).
  const bound = Date.now() + 10_000
  while (redisCli('GET', key) !== 'v') assert.ok(Date.now() < bound, 'Redis never ran the SET')
  assert.equal(redisCli('PING'), 'PONG')
  // Past the timeout, so its timer is due when the loop runs again (timers before the socket read).
  while (performance.now() - sentAt <= TIMEOUT_MS + 1);
  assert.equal(await reply, 'OK')
})

test('a command Redis does not answer fails with "Command timed out"', { timeout: 30_000 }, async (t) => {
  // A server that accepts and never answers: a hung Redis as a client sees it.
  const sockets: Socket[] = []
  const server = createServer((s) => { sockets.push(s) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const redis = createRedis({ kind: 'url', url: `redis://127.0.0.1:${port}`, password: undefined, commandTimeoutMs: TIMEOUT_MS }, silent, 'test-hung')
  t.after(() => { redis.disconnect(); for (const s of sockets) s.destroy(); server.close() })
  await assert.rejects(redis.get('k'), /Command timed out/)
})

test('a command answered, or refused at once by a closed connection, leaves no timer behind', { timeout: 30_000 }, async (t) => {
  const redis = createRedis({ kind: 'url', url: redisUrl(), password: undefined, commandTimeoutMs: 60_000 }, silent, 'test-timers')
  t.after(() => { redis.disconnect() })
  await redis.ping()
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  await Promise.all([redis.ping(), redis.echo('x'), redis.multi().ping().ping().exec()])
  assert.equal(timers(), before, 'answered')
  const ended = once(redis, 'end')
  await redis.quit()
  await ended
  await assert.rejects(redis.ping(), /Connection is closed/)
  assert.equal(timers(), before, 'refused at once')
})
