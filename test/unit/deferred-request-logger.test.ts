import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { deferredRequestLoggers } from '../../src/http/deferred-request-logger.ts'
import { createLogger } from '../../src/shared/logger.ts'

/** A Fastify app logging through the platform's logger at `level`, with the deferred request loggers. */
function app (level: string): { lines: Array<Record<string, unknown>>, server: FastifyInstance } {
  const { lines, logger } = capture(level)
  const server = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    childLoggerFactory: deferredRequestLoggers,
    logController: new LogController({ requestIdLogLabel: 'traceId' }),
    genReqId: () => 'trace-1'
  })
  server.get('/loud', async (request) => {
    request.log.info('not at this level')
    request.log.warn({ secret: 's3cret', detail: 1 }, 'something odd')
    return { ok: true }
  })
  return { lines, server }
}

/** The platform's logger at `level`, writing its lines (parsed) into `lines`. */
function capture (level: string): { lines: Array<Record<string, unknown>>, logger: Logger } {
  const lines: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { lines, logger: createLogger({ level, nodeId: 'n1', destination }) }
}

test('a request logger makes its child only for a line its level lets through', () => {
  const { lines, logger } = capture('warn')
  let made = 0
  const parent = new Proxy(logger, {
    get (target, key, receiver) {
      if (key === 'child') return (...args: Parameters<Logger['child']>) => { made++; return target.child(...args) }
      return Reflect.get(target, key, receiver) as unknown
    }
  })
  const log = deferredRequestLoggers(parent, { traceId: 't1' }, {})
  log.info('dropped')
  log.debug('dropped')
  assert.equal(made, 0)
  assert.equal(lines.length, 0)
  log.warn('kept')
  log.error('kept too')
  assert.equal(made, 1, 'one child, made once')
  assert.deepEqual(lines.map((l) => [l.msg, l.traceId]), [['kept', 't1'], ['kept too', 't1']])
})

test('an enabled line carries the trace id and the redaction; lines below the level are dropped', async () => {
  const { lines, server } = app('warn')
  await server.inject({ method: 'GET', url: '/loud' })
  assert.equal(lines.length, 1)
  const line = lines[0] as Record<string, unknown>
  assert.equal(line.msg, 'something odd')
  assert.equal(line.traceId, 'trace-1')
  assert.equal(line.nodeId, 'n1')
  assert.equal(line.secret, '[redacted]')
  assert.equal(line.detail, 1)
  await server.close()
})

test('at info level the request lines Fastify writes carry the trace id', async () => {
  const { lines, server } = app('info')
  await server.inject({ method: 'GET', url: '/loud' })
  const messages = lines.map((l) => [l.msg, l.traceId])
  assert.deepEqual(messages, [
    ['incoming request', 'trace-1'],
    ['not at this level', 'trace-1'],
    ['something odd', 'trace-1'],
    ['request completed', 'trace-1']
  ])
  await server.close()
})

test('the level of a request logger is its parent\'s until set', async () => {
  const { server } = app('warn')
  let seen: string | undefined
  server.get('/level', async (request) => {
    seen = request.log.level
    request.log.level = 'info'
    request.log.info('now enabled')
    return { level: request.log.level }
  })
  const res = await server.inject({ method: 'GET', url: '/level' })
  assert.equal(seen, 'warn')
  assert.deepEqual(res.json(), { level: 'info' })
  await server.close()
})
