import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import pino from 'pino'
import { MessageChannel } from 'node:worker_threads'
import { linkBrokerThread } from '../../src/api-thread/broker-thread-link.ts'
import { startApiThread } from '../../src/api-thread/start-api-thread.ts'
import type { FromApiThread } from '../../src/api-thread/thread-messages.ts'
import { loadConfig } from '../../src/config/load-config.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { bounded } from '../helpers/eventually.ts'

// How role all's broker thread watches its API thread (src/api-thread/start-api-thread.ts), with a stand-in thread
// (test/helpers/api-thread-stand-in.ts). The real thread end to end: test/integration/api-thread.test.ts.

const STAND_IN = new URL('../helpers/api-thread-stand-in.ts', import.meta.url)

function options (nodeId: string, onDied: (reason: string) => void): Parameters<typeof startApiThread>[0] & { readonly logs: () => string } {
  let logs = ''
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { logs += chunk.toString(); cb() } })
  return {
    config: loadConfig({ PUSHLINE_NODE_ID: nodeId, PUSHLINE_REDIS_URL: 'redis://127.0.0.1:1' }),
    logger: pino({ level: 'info' }, sink),
    readiness: async () => ({ ready: true, checks: {} }),
    metrics: async () => [],
    forgetSession: async () => {},
    onDied,
    entry: STAND_IN,
    logs: () => logs
  }
}

test('an API thread that ends on its own after its start is reported once, with a fatal api_thread_died', { timeout: 60_000 }, async () => {
  let died: ((reason: string) => void) | undefined
  const reported = new Promise<string>((resolve) => { died = resolve })
  const opts = options('dies-after-start', (reason) => { died?.(reason) })
  const thread = await startApiThread(opts)
  assert.equal(thread.httpPort, 4321)
  const reason = await bounded('onDied', reported)
  assert.match(reason, /ended with code 1: stand-in crashed/)
  assert.match(opts.logs(), /"level":60,[^\n]*"event":"api_thread_died"/)
})

test('an API thread that fails to start fails the start with IOT_ERR_API_THREAD, and is not reported as died', { timeout: 60_000 }, async () => {
  let diedCalls = 0
  const opts = options('fails-to-start', () => { diedCalls++ })
  await assert.rejects(startApiThread(opts), (err: unknown) => isPushlineError(err, 'IOT_ERR_API_THREAD') && err.message.includes('Redis unreachable'))
  assert.equal(diedCalls, 0)
})

test('an API thread asked to close ends without being reported as died', { timeout: 60_000 }, async () => {
  let diedCalls = 0
  const opts = options('closes', () => { diedCalls++ })
  const thread = await startApiThread(opts)
  await bounded('close', thread.close())
  // The exit handler runs before close() resolves (both wait for the same 'exit').
  assert.equal(diedCalls, 0)
  assert.doesNotMatch(opts.logs(), /api_thread_died/)
})

test('the broker thread drops the session of a device the API thread names, and answers once it has', { timeout: 60_000 }, async () => {
  const forgotten: string[] = []
  let died: ((reason: string) => void) | undefined
  const ended = new Promise<string>((resolve) => { died = resolve })
  const opts = { ...options('forgets', (reason) => { died?.(reason) }), forgetSession: async (deviceId: string) => { forgotten.push(deviceId) } }
  await startApiThread(opts)
  // The stand-in ends with 0 once the answer it got is the one of a done drop (3 otherwise).
  assert.match(await bounded('the stand-in to end', ended), /ended with code 0/)
  assert.deepEqual(forgotten, ['dev-7'])
})

test('the API thread\'s link asks the broker thread to drop a session, naming the device, and waits for the answer', { timeout: 60_000 }, async (t) => {
  const { port1, port2 } = new MessageChannel()
  t.after(() => { port1.close() })
  const link = linkBrokerThread(port1)
  const asked = new Promise<FromApiThread>((resolve) => { port2.once('message', resolve) })
  let done = false
  const dropping = link.forgetSession('dev-9').then(() => { done = true })
  const question = await bounded('the question', asked)
  assert.ok(question.type === 'ask')
  assert.equal(question.what, 'forgetSession')
  assert.equal(question.deviceId, 'dev-9')
  assert.equal(done, false)
  link.answered({ type: 'answer', id: question.id, value: null })
  await bounded('the drop', dropping)
  assert.equal(done, true)
})
