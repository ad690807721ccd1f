// Security headers on every HTTP response, set by @fastify/helmet. The API answers JSON, which nothing should
// render, frame or run: the default policy denies everything. HTML pages (the dashboard, the OpenAPI UI at /docs)
// get a policy that keeps them to this origin while letting their own scripts and styles work. A route that sets
// its own policy keeps it. Only these headers are sent: helmet's others (HSTS among them) are left to whoever
// terminates TLS in front of the API.

import type { FastifyHelmetOptions } from '@fastify/helmet'

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

type Policy = Exclude<FastifyHelmetOptions['contentSecurityPolicy'], boolean | undefined>

/** A policy written as header text, in the form helmet takes (no defaults added). */
export function cspOption (policy: string): Policy {
  const directives: Record<string, string[]> = {}
  for (const directive of policy.split(';')) {
    const [name, ...values] = directive.trim().split(/\s+/)
    if (name !== undefined && name !== '') directives[name] = values
  }
  return { useDefaults: false, directives }
}

/** The options of @fastify/helmet for the whole app: JSON's policy by default, the page policy per route. */
export const securityHeaders: FastifyHelmetOptions = {
  global: true,
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

/** Route option for a route that serves an HTML page. */
export const pageHeaders = { contentSecurityPolicy: cspOption(PAGE_CSP) }
