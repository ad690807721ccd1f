// Security headers on every HTTP response. The API answers JSON, which nothing should render, frame or run;
// HTML pages (the OpenAPI UI at /docs, and any page the API serves) get a policy that keeps them to this
// origin while letting their own scripts and styles work. A route that sets its own policy keeps it.

import type { FastifyInstance } from 'fastify'

export const API_CSP = "default-src 'none'; frame-ancestors 'none'"
export const PAGE_CSP = [
  "default-src 'self'",
  // swagger-ui sets inline styles and starts from an inline-free initializer; pages may carry small inline scripts.
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

export function addSecurityHeaders (app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff')
    reply.header('x-frame-options', 'DENY')
    reply.header('referrer-policy', 'no-referrer')
    reply.header('cross-origin-opener-policy', 'same-origin')
    reply.header('cross-origin-resource-policy', 'same-origin')
    if (!reply.hasHeader('content-security-policy')) {
      const type = String(reply.getHeader('content-type') ?? '')
      reply.header('content-security-policy', type.startsWith('text/html') ? PAGE_CSP : API_CSP)
    }
    return payload
  })
}
