// Security headers on every HTTP response, chosen by helmet. The API answers JSON, which nothing should render,
// frame or run: the default policy denies everything. HTML pages (the dashboard, the OpenAPI UI at /docs) get a
// policy that keeps them to this origin while letting their own scripts and styles work. A route that sets its own
// policy keeps it. Only these headers are sent: helmet's others (HSTS among them) are left to whoever terminates TLS
// in front of the API.
//
// The options never change and hold no per-request values (no nonces), so helmet runs once per policy at start and
// each response gets the resulting headers: building helmet's middleware on every request, as @fastify/helmet does,
// was a measurable part of a token request's CPU time.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import helmet, { type HelmetOptions } from 'helmet'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route serves an HTML page: it gets the page policy instead of the API's. */
    readonly htmlPage?: boolean
  }
}
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

type Policy = Exclude<HelmetOptions['contentSecurityPolicy'], boolean | undefined>

/** A policy written as header text, in the form helmet takes (no defaults added). */
export function cspOption (policy: string): Policy {
  const directives: Record<string, string[]> = {}
  for (const directive of policy.split(';')) {
    const [name, ...values] = directive.trim().split(/\s+/)
    if (name !== undefined && name !== '') directives[name] = values
  }
  return { useDefaults: false, directives }
}

/** helmet's options for the whole app: JSON's policy. */
export const securityHeaders: HelmetOptions = {
  contentSecurityPolicy: cspOption(API_CSP),
  xFrameOptions: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
  crossOriginOpenerPolicy: { policy: 'same-origin' },
  crossOriginResourcePolicy: { policy: 'same-origin' },
  crossOriginEmbedderPolicy: false,
  originAgentCluster: false,
  strictTransportSecurity: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false
}

/** The headers helmet sets with `options`, as names (lower case) and values. */
export function headersOf (options: Readonly<HelmetOptions>): Record<string, string> {
  const headers: Record<string, string> = {}
  const res = {
    setHeader (name: string, value: string | number | readonly string[]) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { Reflect.deleteProperty(headers, name.toLowerCase()) }
  }
  let failure: unknown
  // The middleware only calls setHeader and removeHeader on the response and reads nothing of the request.
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err) => { failure = err })
  if (failure !== undefined) throw failure
  return headers
}

/** Sets the security headers on every response: the page policy on routes with `config: { htmlPage: true }`. */
export function sendSecurityHeaders (app: FastifyInstance): void {
  const api = headersOf(securityHeaders)
  const page = headersOf({ ...securityHeaders, contentSecurityPolicy: cspOption(PAGE_CSP) })
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(request.routeOptions.config.htmlPage === true ? page : api)
    done()
  })
}
