import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorCodes, isBackendUnavailable, isPushlineError, type ErrorCode } from '../shared/errors.ts'

// One mapping from errors to `{"error": code, "message": text}` with the right status.
// Details of 5xx errors stay in the log, never in the response.

/**
 * Fastify's `frameworkErrors` option: errors found while routing, before any hook (a path parameter over the
 * length limit, a URL that does not decode), in the one error shape instead of Fastify's own.
 */
export function frameworkErrors (err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.status(414).send({ error: 'IOT_ERR_URI_TOO_LONG', message: 'a path parameter is too long' })
  } else {
    reply.status(400).send({ error: 'IOT_ERR_BAD_REQUEST', message: err.message })
  }
}

/**
 * Fastify's `clientErrorHandler` option: requests Node's HTTP parser refuses before there is a request at all
 * (headers or request line over the size limit, a request not read in time, malformed HTTP). Answered on the raw
 * socket, which is then closed.
 */
export function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [code, message]: [ErrorCode, string] = err.code === 'HPE_HEADER_OVERFLOW'
    ? ['IOT_ERR_HEADERS_TOO_LARGE', 'request line and headers are over the size limit']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? ['IOT_ERR_REQUEST_TIMEOUT', 'the request was not received in time']
      : ['IOT_ERR_BAD_REQUEST', 'malformed HTTP request']
  const status = errorCodes[code]
  const body = JSON.stringify({ error: code, message })
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

export function installErrorHandlers (app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isPushlineError(err)) {
      // A busy refusal sheds load as designed (its counter is the signal), not a fault worth an error line each.
      if (err.code === 'IOT_ERR_BUSY') request.log.debug({ event: 'request_busy', reason: err.details?.reason }, err.message)
      else if (err.statusCode >= 500) request.log.error({ err }, 'request failed')
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
