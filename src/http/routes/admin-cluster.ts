import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { DeviceService } from '../../registry/device-service.ts'
import { PushlineError } from '../../shared/errors.ts'
import type { NodeRegistry } from '../../stores/node-registry.ts'
import type { PresenceStore } from '../../stores/presence-store.ts'
import { DeviceParams, NodeId, errors } from '../schemas.ts'

export interface AdminClusterRoutesOptions {
  readonly registry: NodeRegistry
  readonly presence: PresenceStore
  readonly devices: DeviceService
  readonly heartbeatMs: number
}

const NodeView = Type.Object({
  nodeId: Type.String(),
  mqtt: Type.String(),
  ws: Type.String(),
  mqtts: Type.Optional(Type.String()),
  wss: Type.Optional(Type.String()),
  http: Type.String(),
  connections: Type.Integer(),
  weight: Type.Integer(),
  draining: Type.Boolean(),
  drainRequested: Type.Boolean(),
  startedAt: Type.Integer(),
  heartbeatAt: Type.Integer(),
  healthy: Type.Boolean({ description: 'heartbeat seen within the last heartbeat period' })
})

/** Operator routes for nodes, presence and online counts. */
export const adminClusterRoutes: FastifyPluginAsyncTypebox<AdminClusterRoutesOptions> = async (app, opts) => {
  const { registry, presence } = opts
  const tags = ['admin: cluster']
  const authErrors = errors(401, 403)
  const NodeParams = Type.Object({ id: NodeId })

  app.get('/v1/admin/nodes', {
    schema: { tags, summary: 'Live broker nodes with health', response: { 200: Type.Object({ nodes: Type.Array(NodeView) }), ...authErrors } }
  }, async () => {
    const now = Date.now()
    const nodes = await registry.list()
    const drains = await Promise.all(nodes.map((n) => registry.drainRequested(n.nodeId)))
    return { nodes: nodes.map((n, i) => ({ ...n, drainRequested: drains[i] as boolean, healthy: now - n.heartbeatAt <= opts.heartbeatMs * 1.5 })) }
  })

  app.post('/v1/admin/nodes/:id/drain', {
    schema: {
      tags,
      summary: 'Drain a node: it takes no new devices and closes its connections in paced waves; devices get a new node with their next token',
      params: NodeParams,
      response: { 202: Type.Object({ nodeId: Type.String(), drainRequested: Type.Boolean() }), ...authErrors, ...errors(404) }
    }
  }, async (request, reply) => {
    if (await registry.get(request.params.id) === undefined) throw new PushlineError('IOT_ERR_NOT_FOUND', `no live node ${request.params.id}`)
    await registry.setDrain(request.params.id, true)
    return await reply.status(202).send({ nodeId: request.params.id, drainRequested: true })
  })

  app.delete('/v1/admin/nodes/:id/drain', {
    schema: { tags, summary: 'Cancel a drain', params: NodeParams, response: { 200: Type.Object({ nodeId: Type.String(), drainRequested: Type.Boolean() }), ...authErrors } }
  }, async (request) => {
    await registry.setDrain(request.params.id, false)
    return { nodeId: request.params.id, drainRequested: false }
  })

  app.get('/v1/admin/stats', {
    schema: {
      tags,
      summary: 'Online devices (from Redis) and, per node, live sessions, presence entries and their difference',
      response: {
        200: Type.Object({
          online: Type.Integer(),
          nodes: Type.Array(Type.Object({ nodeId: Type.String(), sessions: Type.Integer(), presence: Type.Integer(), drift: Type.Integer() }))
        }),
        ...authErrors
      }
    }
  }, async () => {
    const nodes = await registry.list()
    const counts = await Promise.all(nodes.map((n) => presence.countNode(n.nodeId)))
    return {
      online: await presence.count(),
      nodes: nodes.map((n, i) => ({ nodeId: n.nodeId, sessions: n.connections, presence: counts[i] as number, drift: n.connections - (counts[i] as number) }))
    }
  })

  app.get('/v1/admin/devices/:id/presence', {
    schema: {
      tags,
      summary: 'Whether a device is online, on which node, since when, and when it was last seen',
      params: DeviceParams,
      response: {
        200: Type.Object({
          deviceId: Type.String(),
          online: Type.Boolean(),
          nodeId: Type.Union([Type.String(), Type.Null()]),
          connectedAt: Type.Union([Type.Integer(), Type.Null()]),
          lastSeen: Type.Union([Type.Integer(), Type.Null()])
        }),
        ...authErrors,
        ...errors(404)
      }
    }
  }, async (request) => {
    const id = request.params.id
    await opts.devices.get(id)
    const [entry, lastSeen] = await Promise.all([presence.get(id), presence.lastSeen(id)])
    return {
      deviceId: id,
      online: entry !== undefined,
      nodeId: entry?.nodeId ?? null,
      connectedAt: entry?.connectedAt ?? null,
      lastSeen: entry !== undefined ? Date.now() : lastSeen ?? null
    }
  })
}
