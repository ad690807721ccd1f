import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { PushService } from '../../push/push-service.ts'
import { receiptStates } from '../../stores/receipt-store.ts'
import { DeviceParams, Group, errors } from '../schemas.ts'

export interface AdminPushRoutesOptions {
  readonly push: PushService
}

/** Room for 100,000 device ids of up to 64 characters. */
export const PUSH_BODY_LIMIT = 8 * 1024 * 1024

const Counts = Type.Object(Object.fromEntries(receiptStates.map((s) => [s, Type.Integer()])) as Record<typeof receiptStates[number], ReturnType<typeof Type.Integer>>)
const ReceiptView = Type.Object({
  deviceId: Type.String(),
  state: Type.Union(receiptStates.map((s) => Type.Literal(s))),
  id: Type.Optional(Type.Integer({ description: 'the device\'s message id' })),
  reason: Type.Optional(Type.String()),
  at: Type.Integer({ description: 'epoch ms of the last state change' })
})
export const HistoryEntryView = Type.Object({
  id: Type.Integer(),
  pushId: Type.String(),
  sentAt: Type.Integer(),
  expiresAt: Type.Integer(),
  qos: Type.Integer(),
  data: Type.Unknown(),
  traceId: Type.Optional(Type.String({ description: 'trace id of the push (grep the logs of every process for it)' }))
})

const Progress = Type.Object({ processed: Type.Integer(), total: Type.Optional(Type.Integer()), done: Type.Boolean() })
const PushSummary = Type.Object({
  pushId: Type.String(),
  traceId: Type.Optional(Type.String({ description: 'trace id of the push request (from its traceparent header, or generated)' })),
  target: Type.Record(Type.String(), Type.Unknown()),
  qos: Type.Integer(),
  ttlSeconds: Type.Integer(),
  createdAt: Type.Integer(),
  progress: Progress,
  counts: Counts
})

/** Operator routes for push, receipts and history. Admin auth is applied by the parent scope. */
export const adminPushRoutes: FastifyPluginAsyncTypebox<AdminPushRoutesOptions> = async (app, opts) => {
  const { push } = opts
  const tags = ['admin: push']
  const authErrors = errors(401, 403)

  app.post('/v1/admin/push', {
    bodyLimit: PUSH_BODY_LIMIT,
    schema: {
      tags,
      summary: 'Push data to one device, a list of devices, a group or every device',
      description: 'Give exactly one of deviceId, deviceIds, group, all. A list is processed as a job: follow it with GET /v1/admin/push/{pushId}.',
      body: Type.Object({
        deviceId: Type.Optional(Type.String({ maxLength: 256 })),
        deviceIds: Type.Optional(Type.Array(Type.String({ maxLength: 256 }))),
        group: Type.Optional(Group),
        all: Type.Optional(Type.Boolean()),
        data: Type.Unknown({ description: 'any JSON value, delivered as is' }),
        qos: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)], { default: 1 })),
        ttlSeconds: Type.Optional(Type.Integer({ description: 'how long an offline device may still receive it' }))
      }, { additionalProperties: false }),
      response: { 202: Type.Object({ pushId: Type.String(), traceId: Type.String({ description: 'trace id of this push, also in the x-trace-id header' }) }), ...authErrors, ...errors(400, 404, 413, 429) }
    }
  }, async (request, reply) => {
    // request.id is the request's trace id (trace-context.ts): the push keeps it down to the device.
    return await reply.status(202).send(await push.push({ ...request.body, traceId: request.id }))
  })

  app.get('/v1/admin/push', {
    schema: {
      tags,
      summary: 'The latest pushes, newest first, with their counts by receipt state (the last 1000 are kept)',
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }) }),
      response: { 200: Type.Object({ pushes: Type.Array(PushSummary) }), ...authErrors, ...errors(400) }
    }
  }, async (request) => ({
    pushes: (await push.recent(request.query.limit)).map(({ processed, total, done, ...rest }) => ({
      ...rest,
      progress: total === undefined ? { processed, done } : { processed, total, done }
    }))
  }))

  app.get('/v1/admin/push/:pushId', {
    schema: {
      tags,
      summary: 'Receipts of a push: counts by state and, for device pushes, each device\'s state, paged by device id',
      params: Type.Object({ pushId: Type.String({ maxLength: 128 }) }),
      querystring: Type.Object({
        after: Type.Optional(Type.String({ maxLength: 256 })),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
      }),
      response: {
        200: Type.Composite([PushSummary, Type.Object({ devices: Type.Array(ReceiptView), next: Type.Optional(Type.String()) })]),
        ...authErrors,
        ...errors(400, 404)
      }
    }
  }, async (request) => {
    const view = await push.get(request.params.pushId, request.query.after, request.query.limit)
    const { next, progress, traceId, ...rest } = view
    return {
      ...rest,
      ...(traceId !== undefined && { traceId }),
      progress: progress.total === undefined ? { processed: progress.processed, done: progress.done } : progress,
      ...(next !== undefined && { next })
    }
  })

  app.get('/v1/admin/devices/:id/messages', {
    schema: {
      tags,
      summary: 'A device\'s downlink history, oldest first, by message id',
      params: DeviceParams,
      querystring: Type.Object({
        after: Type.Optional(Type.Integer({ minimum: 0 })),
        before: Type.Optional(Type.Integer({ minimum: 1 })),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
      }),
      response: { 200: Type.Object({ messages: Type.Array(HistoryEntryView) }), ...authErrors, ...errors(400) }
    }
  }, async (request) => ({ messages: await push.history(request.params.id, request.query) }))
}
