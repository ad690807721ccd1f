import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { test } from 'node:test'
import { boundKeepalive, CONNACK_SERVER_UNAVAILABLE, createConnectionLimits, createTokenBucket } from '../../src/broker/connection-limits.ts'

test('the connect token bucket gives its burst at once, then one token per 1/rate seconds', () => {
  let now = 0
  const bucket = createTokenBucket(10, 3, () => now)
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false])
  now += 99
  assert.equal(bucket.take(), false, 'not yet a whole token after 99 ms at 10/s')
  now += 1
  assert.equal(bucket.take(), true)
  now += 10_000
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false], 'refills up to the burst only')
})

test('keepalive 0 and keepalives above the maximum are held to the maximum; others are left alone', () => {
  for (const [asked, held] of [[0, 60], [61, 60], [65_535, 60], [undefined, 60], [1, 1], [60, 60]] as const) {
    const packet: { keepalive?: number } = { keepalive: asked }
    assert.equal(boundKeepalive(packet, 60), asked !== held, `asked ${asked}`)
    assert.equal(packet.keepalive, held, `asked ${asked}`)
  }
})

test('a connection beyond the cap never reaches the broker: it gets CONNACK 3 once it speaks, and the cap frees with each close', { timeout: 120_000 }, async () => {
  const refused: string[] = []
  const handled: PassThrough[] = []
  const limits = createConnectionLimits({ maxConnections: 2, ratePerSecond: 0, burst: 1, refusalTimeoutMs: 5000, onRefused: (r) => refused.push(r) })
  const handle = limits.wrap((stream) => { handled.push(stream as PassThrough) })
  const a = new PassThrough()
  const b = new PassThrough()
  const c = new PassThrough()
  handle(a)
  handle(b)
  handle(c)
  assert.equal(handled.length, 2)
  assert.deepEqual(refused, ['max_connections'])
  assert.equal(limits.open(), 2)
  const written: Buffer[] = []
  c.on('data', (d: Buffer) => written.push(d))
  c.write(Buffer.from([0x10, 0x00]))
  await new Promise((resolve) => setImmediate(resolve))
  assert.ok(written.some((d) => d.equals(CONNACK_SERVER_UNAVAILABLE)))
  a.destroy()
  await new Promise((resolve) => a.once('close', resolve))
  assert.equal(limits.open(), 1)
  handle(new PassThrough())
  assert.equal(handled.length, 3, 'a freed place is given again')
})
