import type { FastifyError, FastifyInstance } from 'fastify'
import { isBackendUnavailable, isPushlineError } from '../shared/errors.ts'

// One mapping from errors to `{"error": code, "message": text}` with the right status.
// Details of 5xx errors stay in the log, never in the response.

export function installErrorHandlers (app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isPushlineError(err)) {
      if (err.statusCode >= 500) request.log.error({ err }, 'request failed')
      const wait = err.details?.retryAfterSeconds
      if (typeof wait === 'number') reply.header('retry-after', String(wait))
      return reply.status(err.statusCode).send({ error: err.code, message: err.statusCode >= 500 ? 'internal error' : err.message })
    }
    if (isBackendUnavailable(err)) {
      request.log.warn({ event: 'backend_unavailable', err: err.message }, 'request failed: backend unavailable')
      return reply.status(503).header('retry-after', '5').send({ error: 'IOT_ERR_UNAVAILABLE', message: 'a backing service is unavailable, retry later' })
    }
    if (err.validation !== undefined) {
      return reply.status(400).send({ error: 'IOT_ERR_VALIDATION', message: err.message })
    }
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.status(413).send({ error: 'IOT_ERR_PAYLOAD_TOO_LARGE', message: 'request body is too large' })
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.status(400).send({ error: 'IOT_ERR_INVALID_JSON', message: err.message })
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.status(415).send({ error: 'IOT_ERR_VALIDATION', message: 'send JSON with content-type application/json' })
    }
    if (err instanceof SyntaxError && err.statusCode === 400) {
      return reply.status(400).send({ error: 'IOT_ERR_INVALID_JSON', message: err.message })
    }
    if (err.statusCode !== undefined && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: 'IOT_ERR_VALIDATION', message: err.message })
    }
    request.log.error({ err }, 'request failed')
    return reply.status(500).send({ error: 'IOT_ERR_INTERNAL', message: 'internal error' })
  })

  app.setNotFoundHandler((request, reply) => {
    return reply.status(404).send({ error: 'IOT_ERR_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` })
  })
}
