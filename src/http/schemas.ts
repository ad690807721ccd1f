import { Type, type TSchema } from '@sinclair/typebox'
import { DEVICE_ID_PATTERN, GROUP_PATTERN } from '../registry/device-service.ts'

export const ErrorBody = Type.Object({
  error: Type.String({ description: 'stable error code, IOT_ERR_*' }),
  message: Type.String()
}, { $id: 'Error' })

export const DeviceId = Type.String({ pattern: DEVICE_ID_PATTERN, description: '1 to 64 characters of [A-Za-z0-9_.-]' })
export const Group = Type.String({ pattern: GROUP_PATTERN })
export const Groups = Type.Array(Group, { maxItems: 64, uniqueItems: true })

export const DeviceParams = Type.Object({ id: DeviceId })
export const NodeId = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'a node id' })

export const BrokerAddress = Type.Object({
  nodeId: Type.String(),
  mqtt: Type.String(),
  ws: Type.String(),
  mqtts: Type.Optional(Type.String({ description: 'MQTT over TLS, when the node has a certificate' })),
  wss: Type.Optional(Type.String({ description: 'MQTT over WebSocket over TLS, when the node has a certificate' }))
})

export const CreatedDevice = Type.Object({
  id: Type.String(),
  secret: Type.String({ description: 'shown once; only a hash is stored' }),
  groups: Type.Array(Type.String())
})

export const DeviceView = Type.Object({
  id: Type.String(),
  groups: Type.Array(Type.String()),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  enabled: Type.Boolean(),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer()
})

/** An error response whose description names the codes a route answers with (codes are stable; messages are not). */
export function errorWithCodes (...codes: string[]): TSchema {
  return Type.Ref('Error', { description: codes.join(', ') })
}

/** Error responses every route may give, for the OpenAPI document. */
export function errors (...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, Type.Ref('Error')]))
}
