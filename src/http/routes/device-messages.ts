import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { requires } from '../openapi-document.ts'
import type { PushService } from '../../push/push-service.ts'
import type { DeviceService } from '../../registry/device-service.ts'
import type { TokenGuard } from '../../registry/token-guard.ts'
import { PushlineError } from '../../shared/errors.ts'
import { errors } from '../schemas.ts'

export interface DeviceMessageRoutesOptions {
  readonly devices: DeviceService
  readonly push: PushService
  readonly guard: TokenGuard
}

/** A device pulls the downlinks it missed, with its own token. */
export const deviceMessageRoutes: FastifyPluginAsyncTypebox<DeviceMessageRoutesOptions> = async (app, opts) => {
  app.get('/v1/devices/me/messages', {
    schema: {
      tags: ['registry'],
      summary: 'Downlinks after a message id, oldest first (Authorization: Bearer <device token>)',
      security: requires('deviceToken'),
      querystring: Type.Object({
        after: Type.Integer({ minimum: 0, default: 0 }),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
      }),
      response: {
        200: Type.Object({
          messages: Type.Array(Type.Object({ id: Type.Integer(), pushId: Type.String(), sentAt: Type.Integer(), data: Type.Unknown() }))
        }),
        ...errors(400, 401, 429)
      }
    }
  }, async (request) => {
    // The address is counted before the token is looked up, so guessing tokens costs the guesser its rate.
    await opts.guard.admit(request.ip)
    const header = request.headers.authorization
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    const deviceId = match === null ? undefined : await opts.devices.deviceForToken(match[1] as string)
    if (deviceId === undefined) throw new PushlineError('IOT_ERR_UNAUTHORIZED', 'send Authorization: Bearer <device token>')
    await opts.guard.admitPull(deviceId)
    return { messages: await opts.push.pull(deviceId, request.query.after, request.query.limit) }
  })
}
