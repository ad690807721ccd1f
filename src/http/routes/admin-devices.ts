import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { DeviceService } from '../../registry/device-service.ts'
import { CreatedDevice, DeviceId, DeviceParams, DeviceView, Group, Groups, errors, errorWithCodes } from '../schemas.ts'
import { BATCH_BODY_LIMIT, BatchBody, BatchResult, checkBatch } from './device-batch.ts'

export interface AdminDeviceRoutesOptions {
  readonly devices: DeviceService
}

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
      summary: 'List devices by id, paged',
      querystring: Type.Object({
        after: Type.Optional(DeviceId),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        group: Type.Optional(Group)
      }),
      response: { 200: Type.Object({ devices: Type.Array(DeviceView), next: Type.Optional(Type.String()) }), ...authErrors, ...errors(400) }
    }
  }, async (request) => {
    const page = await devices.list(request.query)
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
