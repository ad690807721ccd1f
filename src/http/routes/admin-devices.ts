import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { DeviceService } from '../../registry/device-service.ts'
import { PushlineError } from '../../shared/errors.ts'
import { TRANSPORTS, type PresenceEntry, type PresenceStore, type Transport } from '../../stores/presence-store.ts'
import { CreatedDevice, DeviceId, DeviceParams, DeviceView, Group, Groups, NodeId, errors, errorWithCodes } from '../schemas.ts'
import { BATCH_BODY_LIMIT, BatchBody, BatchResult, checkBatch } from './device-batch.ts'

export interface AdminDeviceRoutesOptions {
  readonly devices: DeviceService
  /** The online listing (`online=true`) reads presence: the same entries `GET /v1/admin/stats` counts. */
  readonly presence: PresenceStore
}

const OnlineDevice = Type.Object({
  id: Type.String(),
  nodeId: Type.String({ description: 'the node holding the connection' }),
  connectedAt: Type.Integer({ description: 'epoch ms of the CONNECT' }),
  address: Type.Union([Type.String(), Type.Null()], { description: 'client address as the node sees it, ip:port ([ip]:port for IPv6); null for entries that did not record one' }),
  transport: Type.Union([...TRANSPORTS.map((t) => Type.Literal(t)), Type.Null()], { description: 'tcp, tls (MQTT over TLS), ws (MQTT over WebSocket) or wss (over WebSocket over TLS)' })
})

const onlineView = (e: PresenceEntry): { id: string, nodeId: string, connectedAt: number, address: string | null, transport: Transport | null } =>
  ({ id: e.deviceId, nodeId: e.nodeId, connectedAt: e.connectedAt, address: e.address ?? null, transport: e.transport ?? null })

const badQuery = (message: string): PushlineError => new PushlineError('IOT_ERR_VALIDATION', message)

/** Operator routes for the device registry. Admin auth is applied by the parent scope. */
export const adminDeviceRoutes: FastifyPluginAsyncTypebox<AdminDeviceRoutesOptions> = async (app, opts) => {
  const { devices } = opts
  const tags = ['admin: devices']
  const authErrors = errors(401, 403)

  app.post('/v1/admin/devices', {
    schema: {
      tags,
      summary: 'Create a device; the secret is returned once',
      body: Type.Object({
        id: DeviceId,
        groups: Type.Optional(Groups),
        metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
      }, { additionalProperties: false }),
      response: { 201: CreatedDevice, ...authErrors, ...errors(400, 409, 413) }
    }
  }, async (request, reply) => {
    return await reply.status(201).send(await devices.create(request.body))
  })

  app.post('/v1/admin/devices/batch', {
    bodyLimit: BATCH_BODY_LIMIT,
    // Size, emptiness and shape errors get their own codes (checkBatch), not the generic validation answer.
    attachValidation: true,
    schema: {
      tags,
      summary: 'Create up to 10,000 devices; each secret is returned once. Taken or invalid ids fail one by one, the rest are created',
      body: BatchBody,
      response: {
        200: BatchResult,
        ...authErrors,
        400: errorWithCodes('IOT_ERR_BATCH_EMPTY', 'IOT_ERR_BATCH_TOO_LARGE', 'IOT_ERR_BATCH_DUPLICATE_ID', 'IOT_ERR_VALIDATION', 'IOT_ERR_INVALID_JSON'),
        413: errorWithCodes(`IOT_ERR_PAYLOAD_TOO_LARGE: body over ${BATCH_BODY_LIMIT} bytes`)
      }
    }
  }, async (request) => {
    const { valid, invalid } = checkBatch(request.body, request.validationError)
    const result = await devices.createBatch(valid)
    return { created: result.created, failed: [...invalid, ...result.failed] }
  })

  app.get('/v1/admin/devices', {
    schema: {
      tags,
      summary: 'List registered devices by id, paged; with online=true, the devices online now (from presence), paged',
      description: 'Without `online`: registered devices, optionally of one `group`. With `online=true`: the devices ' +
        'online now with their node, connect time, client address and transport, optionally on one `node`; the pages ' +
        'add up to `online` in `GET /v1/admin/stats`. Pass `next` as `after` for the next page.',
      querystring: Type.Object({
        after: Type.Optional(DeviceId),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        group: Type.Optional(Group),
        online: Type.Optional(Type.Boolean({ description: 'true: list online devices; false is not supported' })),
        node: Type.Optional(NodeId)
      }),
      response: {
        200: Type.Union([
          Type.Object({ devices: Type.Array(DeviceView), next: Type.Optional(Type.String()) }),
          Type.Object({ devices: Type.Array(OnlineDevice), next: Type.Optional(Type.String()) })
        ]),
        ...authErrors,
        ...errors(400)
      }
    }
  }, async (request) => {
    const { online, node, group, after, limit } = request.query
    if (online === false) throw badQuery('online=false is not supported: leave online out to list every registered device')
    if (online === true) {
      if (group !== undefined) throw badQuery('group cannot be combined with online=true')
      const page = await opts.presence.list({ after, limit, ...(node !== undefined && { nodeId: node }) })
      const listed = page.entries.map(onlineView)
      return page.next === undefined ? { devices: listed } : { devices: listed, next: page.next }
    }
    if (node !== undefined) throw badQuery('node needs online=true')
    const page = await devices.list({ after, limit, ...(group !== undefined && { group }) })
    return page.next === undefined ? { devices: page.devices } : { devices: page.devices, next: page.next }
  })

  app.get('/v1/admin/devices/:id', {
    schema: { tags, summary: 'Read a device', params: DeviceParams, response: { 200: DeviceView, ...authErrors, ...errors(404) } }
  }, async (request) => await devices.get(request.params.id))

  app.delete('/v1/admin/devices/:id', {
    schema: { tags, summary: 'Delete a device, its tokens and its live connection', params: DeviceParams, response: { 204: Type.Null(), ...authErrors, ...errors(404) } }
  }, async (request, reply) => {
    await devices.remove(request.params.id)
    return await reply.status(204).send(null)
  })

  app.post('/v1/admin/devices/:id/revoke', {
    schema: {
      tags,
      summary: 'Kill every token of the device and end its live connection',
      params: DeviceParams,
      response: { 200: Type.Object({ id: Type.String(), revokedTokens: Type.Integer() }), ...authErrors, ...errors(404) }
    }
  }, async (request) => ({ id: request.params.id, revokedTokens: await devices.revoke(request.params.id) }))

  app.post('/v1/admin/devices/:id/kick', {
    schema: {
      tags,
      summary: 'End the device\'s live connection on whichever node holds it; its tokens stay valid, so it may connect again',
      description: '202 once the close is ordered to the node presence names; 409 `IOT_ERR_DEVICE_OFFLINE` when the device is not online.',
      params: DeviceParams,
      response: {
        202: Type.Object({ id: Type.String(), nodeId: Type.String({ description: 'the node told to close it' }), connectedAt: Type.Integer() }),
        ...authErrors,
        ...errors(404, 409)
      }
    }
  }, async (request, reply) => {
    const entry = await devices.kick(request.params.id)
    return await reply.status(202).send({ id: entry.deviceId, nodeId: entry.nodeId, connectedAt: entry.connectedAt })
  })

  app.post('/v1/admin/devices/:id/disable', {
    schema: { tags, summary: 'Disable a device: tokens revoked, connection ended, no new token', params: DeviceParams, response: { 200: DeviceView, ...authErrors, ...errors(404) } }
  }, async (request) => await devices.setEnabled(request.params.id, false))

  app.post('/v1/admin/devices/:id/enable', {
    schema: { tags, summary: 'Enable a disabled device', params: DeviceParams, response: { 200: DeviceView, ...authErrors, ...errors(404) } }
  }, async (request) => await devices.setEnabled(request.params.id, true))

  app.post('/v1/admin/devices/:id/secret', {
    schema: { tags, summary: 'Rotate the device secret; the new one is returned once', params: DeviceParams, response: { 200: CreatedDevice, ...authErrors, ...errors(404) } }
  }, async (request) => await devices.rotateSecret(request.params.id))
}
