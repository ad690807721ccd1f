import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { requires } from '../openapi-document.ts'
import type { MetricsExposition } from '../../metrics/merged-metrics.ts'

export interface ReadinessReport {
  readonly ready: boolean
  readonly checks: Readonly<Record<string, string>>
}

export interface HealthRoutesOptions {
  readonly nodeId: string
  readonly readiness: () => Promise<ReadinessReport>
  readonly metrics: MetricsExposition
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  app.get('/healthz', {
    schema: { tags: ['operations'], summary: 'The process is alive', security: requires(), response: { 200: Type.Object({ status: Type.Literal('ok'), nodeId: Type.String() }) } }
  }, async () => ({ status: 'ok' as const, nodeId: opts.nodeId }))

  const Readiness = Type.Object({ ready: Type.Boolean(), nodeId: Type.String(), checks: Type.Record(Type.String(), Type.String()) })
  app.get('/readyz', {
    schema: { tags: ['operations'], summary: 'Dependencies reachable and not draining', security: requires(), response: { 200: Readiness, 503: Readiness } }
  }, async (_request, reply) => {
    const report = await opts.readiness()
    return await reply.status(report.ready ? 200 : 503).send({ ...report, nodeId: opts.nodeId })
  })

  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics of this process (text exposition format)',
      // Open by design, like /healthz and /readyz: keep the port off public networks (docs/security.md).
      security: requires(),
      response: { 200: { description: 'every pushline_* metric of this process, plus Node.js process metrics', content: { 'text/plain': { schema: Type.String() } } } }
    }
  }, async (_request, reply) => {
    return await reply.type(opts.metrics.contentType).send(await opts.metrics.metrics())
  })
}
