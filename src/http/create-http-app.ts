import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv } from 'ajv'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { MetricsExposition } from '../metrics/merged-metrics.ts'
import type { DeviceService } from '../registry/device-service.ts'
import type { TokenGuard } from '../registry/token-guard.ts'
import type { RequestGate } from '../shared/request-gate.ts'
import { createAdminAuth } from './admin-auth.ts'
import { deferredRequestLoggers } from './deferred-request-logger.ts'
import { clientErrorHandler, frameworkErrors, installErrorHandlers } from './error-handler.ts'
import { limitJsonDepth } from './json-depth-limit.ts'
import { documentSecurity, optionalQueryDefaults, securitySchemes } from './openapi-document.ts'
import { documentCommonErrors } from './error-responses.ts'
import { echoTrace, traceRequestIds } from './trace-context.ts'
import { PAGE_CSP, sendSecurityHeaders } from './security-headers.ts'
import { adminClusterRoutes } from './routes/admin-cluster.ts'
import { adminDeviceRoutes } from './routes/admin-devices.ts'
import type { NodeRegistry } from '../stores/node-registry.ts'
import type { PresenceStore } from '../stores/presence-store.ts'
import { healthRoutes, type ReadinessReport } from './routes/health.ts'
import { registryRoutes } from './routes/registry.ts'
import { ErrorBody } from './schemas.ts'
import type { PushService } from '../push/push-service.ts'
import { adminPushRoutes } from './routes/admin-push.ts'
import { deviceMessageRoutes } from './routes/device-messages.ts'
import { dashboardRoutes } from './routes/dashboard.ts'
import { adminMetricsRoutes } from './routes/admin-metrics.ts'

export interface HttpAppOptions {
  readonly logger: Logger
  readonly nodeId: string
  readonly adminKeys: readonly string[]
  readonly provisioningKey: string | undefined
  readonly metrics: MetricsExposition
  readonly readiness: () => Promise<ReadinessReport>
  /** Absent in the broker role: that process serves only health and metrics. */
  readonly registry?: {
    readonly devices: DeviceService
    readonly guard: TokenGuard
    readonly cluster: { readonly registry: NodeRegistry, readonly presence: PresenceStore, readonly heartbeatMs: number }
    readonly push?: PushService
    /** Bounds the token requests in progress. */
    readonly tokenGate: RequestGate
  }
}

export async function createHttpApp (opts: HttpAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    frameworkErrors,
    clientErrorHandler,
    childLoggerFactory: deferredRequestLoggers,
    ...traceRequestIds()
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Query strings and paths arrive as text and are coerced to their schema types; JSON bodies are not:
  // {"id": 42} is a wrong type, not the string "42".
  const coercing = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: false })
  const strict = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false })
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema))

  installErrorHandlers(app)
  limitJsonDepth(app)
  echoTrace(app)
  sendSecurityHeaders(app)
  app.addSchema(ErrorBody)
  documentCommonErrors(app)
  await app.register(swagger, {
    openapi: {
      info: { title: 'Pushline API', version: '1' },
      components: { securitySchemes }
    },
    transformObject: (document) => 'openapiObject' in document ? optionalQueryDefaults(document.openapiObject) : document.swaggerObject,
    // Shared schemas keep their $id as their name in the document (#/components/schemas/Error), not def-0.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: PAGE_CSP })

  await app.register(healthRoutes, { nodeId: opts.nodeId, readiness: opts.readiness, metrics: opts.metrics })

  if (opts.registry !== undefined) {
    const { devices, guard, cluster, push, tokenGate } = opts.registry
    await app.register(registryRoutes, { devices, guard, tokenGate, provisioningKey: opts.provisioningKey })
    if (push !== undefined) await app.register(deviceMessageRoutes, { devices, push, guard })
    await app.register(dashboardRoutes)
    await app.register(async (admin) => {
      admin.addHook('onRequest', createAdminAuth(opts.adminKeys))
      documentSecurity(admin, 'admin')
      await admin.register(adminDeviceRoutes, { devices, presence: cluster.presence })
      await admin.register(adminClusterRoutes, { ...cluster, devices })
      if (push !== undefined) await admin.register(adminPushRoutes, { push })
      await admin.register(adminMetricsRoutes, cluster)
    })
  }
  return app
}
