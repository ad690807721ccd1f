import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { NodeRegistry } from '../../stores/node-registry.ts'
import { errors } from '../schemas.ts'

// Cluster-wide traffic for the dashboard: each live node's counters as written into its registry record at
// its last heartbeat. Counters are cumulative since the node started; a client derives rates from two samples
// of the same node (a counter that went down means the node restarted).

export interface AdminMetricsRoutesOptions {
  readonly registry: NodeRegistry
  readonly heartbeatMs: number
}

const Traffic = Type.Object({
  uplinks: Type.Integer({ description: 'uplinks accepted since the node started' }),
  downlinks: Type.Integer({ description: 'downlinks written to connections since the node started' }),
  kafkaRecords: Type.Integer({ description: 'uplinks acknowledged by Kafka since the node started' }),
  spoolDepth: Type.Integer({ description: 'uplinks in the spool not yet in Kafka, now' })
})

export const adminMetricsRoutes: FastifyPluginAsyncTypebox<AdminMetricsRoutesOptions> = async (app, opts) => {
  app.get('/v1/admin/metrics/summary', {
    schema: {
      tags: ['admin: cluster'],
      summary: 'Traffic counters of every live node from its last heartbeat, and their sums',
      description: 'Nodes refresh their record every half heartbeat period; compute rates from successive samples of one node (its heartbeatAt and counters).',
      response: {
        200: Type.Object({
          at: Type.Integer({ description: 'epoch ms of this answer' }),
          heartbeatMs: Type.Integer(),
          nodes: Type.Array(Type.Object({ nodeId: Type.String(), startedAt: Type.Integer(), heartbeatAt: Type.Integer(), traffic: Type.Union([Traffic, Type.Null()]) })),
          totals: Traffic
        }),
        ...errors(401, 403)
      }
    }
  }, async () => {
    const nodes = await opts.registry.list()
    const totals = { uplinks: 0, downlinks: 0, kafkaRecords: 0, spoolDepth: 0 }
    for (const n of nodes) {
      if (n.traffic === undefined) continue
      for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += n.traffic[k]
    }
    return {
      at: Date.now(),
      heartbeatMs: opts.heartbeatMs,
      nodes: nodes.map((n) => ({ nodeId: n.nodeId, startedAt: n.startedAt, heartbeatAt: n.heartbeatAt, traffic: n.traffic ?? null })),
      totals
    }
  })
}
