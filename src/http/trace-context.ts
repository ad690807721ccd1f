import { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createRandomPool } from '../shared/random-pool.ts'
import { newTraceId, traceIdFromTraceparent, traceparentFor } from '../shared/trace.ts'

// Every HTTP request runs under a trace id: the caller's W3C `traceparent`, or a new one. It is Fastify's request
// id, so each request log line carries it as `traceId`; routes hand it on (an admin push keeps it to the device).

export function traceRequestIds (): Pick<FastifyServerOptions, 'genReqId' | 'logController' | 'requestIdHeader'> {
  const random = createRandomPool()
  return {
    genReqId: (req) => traceIdFromTraceparent(req.headers.traceparent) ?? newTraceId(random),
    logController: new LogController({ requestIdLogLabel: 'traceId' }),
    requestIdHeader: false
  }
}

/** Every response, errors included, names its trace: `x-trace-id` and a `traceparent` with a new span id. */
export function echoTrace (app: FastifyInstance): void {
  const random = createRandomPool()
  // A callback hook, not an async one: no promise per request for work that never waits.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-trace-id', request.id)
    reply.header('traceparent', traceparentFor(request.id, random))
    done()
  })
}
