// What the generated OpenAPI document (/docs/json) says about authentication and optional query parameters.
// Routes name their security scheme in their schema (`security`); the admin scope adds its scheme to every route
// registered in it, next to the hook that checks the key.

import type { FastifyInstance } from 'fastify'

export const securitySchemes = {
  admin: { type: 'http', scheme: 'bearer', description: 'An operator key from PUSHLINE_ADMIN_KEYS' },
  deviceToken: { type: 'http', scheme: 'bearer', description: 'A device token from POST /v1/devices/{id}/token' },
  provisioningKey: { type: 'apiKey', in: 'header', name: 'X-Provisioning-Key', description: 'The fleet provisioning key (PUSHLINE_PROVISIONING_KEY)' }
} as const

export type SecurityScheme = keyof typeof securitySchemes

/** A route schema's `security`: the one scheme it needs, or none (`[]`: open by design, or credentials in the body). */
export function requires (scheme?: SecurityScheme): Array<Record<string, string[]>> {
  return scheme === undefined ? [] : [{ [scheme]: [] }]
}

/** Adds `scheme` to the documented security of every route registered in `scope` (and the scopes inside it). */
export function documentSecurity (scope: FastifyInstance, scheme: SecurityScheme): void {
  scope.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, security: requires(scheme) }
  })
}

interface Parameter { in?: string, required?: boolean, schema?: { default?: unknown } }
interface PathItems { paths?: Record<string, Record<string, { parameters?: Parameter[] } | undefined>> }

/**
 * @fastify/swagger marks a query parameter required when its schema lists it in `required`; a parameter with a
 * default is filled in by validation and need not be sent, so the document says it is optional.
 */
export function optionalQueryDefaults<D> (document: D): D {
  for (const operations of Object.values((document as PathItems).paths ?? {})) {
    for (const operation of Object.values(operations)) {
      for (const parameter of operation?.parameters ?? []) {
        if (parameter.in === 'query' && parameter.schema?.default !== undefined) parameter.required = false
      }
    }
  }
  return document
}
