import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { replaceSendCommand, socketOf } from '../../src/shared/ioredis/internals.ts'
import { prefixChannels } from '../../src/shared/ioredis/prefix-pubsub-channels.ts'
import { quitOrDisconnect } from '../../src/shared/ioredis/quit-or-disconnect.ts'
import { stateOf } from '../../src/cluster/mqemitter-redis-state.ts'
import { isPushlineError } from '../../src/shared/errors.ts'

/** A connection that never connects (lazyConnect, nothing sent), whose methods the test replaces. */
function idle (): Redis {
  return new Redis({ lazyConnect: true, enableOfflineQueue: false })
}

test('channels get the prefix on the way out; ioredis\'s resubscribe (an array, already prefixed) passes as it is', async () => {
  const pub = idle()
  const sub = idle()
  const calls: unknown[][] = []
  const record = (name: string) => (...args: unknown[]) => { calls.push([name, ...args]); return Promise.resolve(1) }
  for (const [conn, names] of [[pub, ['publish']], [sub, ['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe']]] as const) {
    for (const name of names) Reflect.set(conn, name, record(name))
  }
  prefixChannels(pub, sub, 'p1:mq:')
  await Promise.all([
    pub.publish('devices/d-1/down', 'x'),
    sub.subscribe('devices/+/down'),
    sub.psubscribe('devices/*'),
    sub.subscribe(['p1:mq:a', 'p1:mq:b'] as unknown as string),
    sub.unsubscribe('t'),
    sub.punsubscribe('t*')
  ])
  assert.deepEqual(calls, [
    ['publish', 'p1:mq:devices/d-1/down', 'x'],
    ['subscribe', 'p1:mq:devices/+/down'],
    ['psubscribe', 'p1:mq:devices/*'],
    ['subscribe', ['p1:mq:a', 'p1:mq:b']],
    ['unsubscribe', 'p1:mq:t'],
    ['punsubscribe', 'p1:mq:t*']
  ])
})

test('a quit that fails (Redis down) disconnects instead of rejecting', async () => {
  const conn = idle()
  let disconnected = 0
  Reflect.set(conn, 'quit', async () => { throw new Error('Connection is closed.') })
  Reflect.set(conn, 'disconnect', () => { disconnected++ })
  quitOrDisconnect(conn)
  assert.equal(await conn.quit(), 'OK')
  assert.equal(disconnected, 1)
})

test('the socket of a connection that has none yet is undefined', () => {
  assert.equal(socketOf(idle()), undefined)
})

test('mqemitter-redis without its state emitter is refused with IOT_ERR_DEPENDENCY', () => {
  assert.throws(() => stateOf({}), (err: unknown) => isPushlineError(err, 'IOT_ERR_DEPENDENCY'))
})

test('a connection without sendCommand is refused with IOT_ERR_DEPENDENCY, naming it', () => {
  const conn = idle()
  Reflect.set(conn, 'sendCommand', undefined)
  assert.throws(() => { replaceSendCommand(conn, (send) => send) }, (err: unknown) => isPushlineError(err, 'IOT_ERR_DEPENDENCY') && err.message.includes('Redis#sendCommand'))
})
