import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { clientGone } from '../client-gone.ts'
import { requires } from '../openapi-document.ts'
import { matchesAnyKey } from '../../auth/constant-time.ts'
import type { DeviceService } from '../../registry/device-service.ts'
import type { TokenAdmission, TokenGuard } from '../../registry/token-guard.ts'
import type { RequestGate } from '../../shared/request-gate.ts'
import { isPushlineError, PushlineError } from '../../shared/errors.ts'
import { BrokerAddress, CreatedDevice, DeviceId, DeviceParams, Groups, errors } from '../schemas.ts'

export interface RegistryRoutesOptions {
  readonly devices: DeviceService
  /** Self-registration is off when undefined. */
  readonly provisioningKey: string | undefined
  readonly guard: TokenGuard
  readonly tokenGate: RequestGate
}

/** Routes devices call: token issue/refresh and self-registration. */
export const registryRoutes: FastifyPluginAsyncTypebox<RegistryRoutesOptions> = async (app, opts) => {
  app.post('/v1/devices/:id/token', {
    schema: {
      tags: ['registry'],
      summary: 'Issue a token with the device secret, or refresh one with the current token',
      // The credentials (secret or token) are in the body.
      security: requires(),
      params: DeviceParams,
      body: Type.Union([
        Type.Object({ secret: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }),
        Type.Object({ token: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false })
      ]),
      response: {
        200: Type.Object({ token: Type.String(), expiresAt: Type.Integer(), broker: BrokerAddress }),
        ...errors(400, 401, 403, 429, 503)
      }
    }
  }, async (request, reply) => await opts.tokenGate.run(async () => {
    const id = request.params.id
    let admission: Promise<TokenAdmission>
    if ('secret' in request.body) {
      // One Redis round trip with everything checked, counted and written; a secret stored in an older form is
      // checked below, its admission already counted.
      const exchanged = await opts.devices.exchangeSecret(id, request.body.secret, opts.guard.tokenRules(request.ip, id))
      if (!('legacy' in exchanged)) return exchanged
      admission = Promise.resolve({ failures: exchanged.failures })
    } else {
      admission = opts.guard.admitToken(request.ip, id)
    }
    try {
      const issued = await opts.devices.issueToken(id, request.body, admission)
      // Settled by now. Most requests follow no failure: they skip the write that clears the count.
      if ((await admission).failures > 0) await opts.guard.succeeded(id)
      return issued
    } catch (err) {
      if (isPushlineError(err, 'IOT_ERR_BAD_CREDENTIALS')) await opts.guard.failed(id)
      throw err
    }
  }, opts.tokenGate.full ? clientGone(reply.raw) : undefined))

  app.post('/v1/devices', {
    schema: {
      tags: ['registry'],
      summary: 'Self-registration with the fleet provisioning key',
      security: requires('provisioningKey'),
      headers: Type.Object({ 'x-provisioning-key': Type.Optional(Type.String()) }),
      body: Type.Object({ id: DeviceId, groups: Type.Optional(Groups) }, { additionalProperties: false }),
      response: { 201: CreatedDevice, ...errors(400, 401, 403, 409, 429) }
    }
  }, async (request, reply) => {
    await opts.guard.admit(request.ip)
    if (opts.provisioningKey === undefined) {
      throw new PushlineError('IOT_ERR_SELF_REGISTRATION_OFF', 'self-registration is off: no provisioning key is configured')
    }
    const key = request.headers['x-provisioning-key']
    if (key === undefined) throw new PushlineError('IOT_ERR_UNAUTHORIZED', 'send X-Provisioning-Key')
    if (!matchesAnyKey(key, [opts.provisioningKey])) throw new PushlineError('IOT_ERR_FORBIDDEN', 'provisioning key not accepted')
    const created = await opts.devices.create({ id: request.body.id, groups: request.body.groups ?? [] })
    return await reply.status(201).send(created)
  })
}
