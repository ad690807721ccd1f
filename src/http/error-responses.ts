import type { FastifyInstance } from 'fastify'
import { errors } from './schemas.ts'

// Errors any route can answer with, added to each route's documented responses (a route's own entries win):
// 500 and 503 (a backing service down: IOT_ERR_UNAVAILABLE) everywhere, 400 where there is input to validate,
// 413 and 415 where there is a body. All of them have the one error shape, {"error", "message"}.

export function documentCommonErrors (app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema
    if (schema === undefined || schema.hide === true) return
    const input = schema.body !== undefined || schema.params !== undefined || schema.querystring !== undefined
    const common = {
      ...(input && errors(400)),
      ...(schema.body !== undefined && errors(413, 415)),
      ...errors(500, 503)
    }
    route.schema = { ...schema, response: { ...common, ...(schema.response as Record<string, unknown> | undefined) } }
  })
}
