import { Type, type Static } from '@sinclair/typebox'
import { Ajv } from 'ajv'
import { MAX_BATCH, DEVICE_ID_PATTERN, type BatchFailure, type NewDevice } from '../../registry/device-service.ts'
import { PushlineError } from '../../shared/errors.ts'
import { CreatedDevice, Groups } from '../schemas.ts'

// The batch route's input rules. The request schema checks only the shape, so that one bad id or group fails that
// device (IOT_ERR_VALIDATION in `failed`) and not the whole batch; the whole batch fails (400, nothing written)
// when it is empty, over MAX_BATCH, repeats an id, or is not of the documented shape.

/** 10,000 devices with ids, a few groups and some metadata fit; parsing it costs the event loop tens of ms. */
export const BATCH_BODY_LIMIT = 8 * 1024 * 1024

const BatchDevice = Type.Object({
  id: Type.String({ description: 'pattern ' + DEVICE_ID_PATTERN + '; an id that does not match fails alone' }),
  groups: Type.Optional(Type.Array(Type.String(), { description: 'as for POST /v1/admin/devices; invalid groups fail the device alone' })),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
}, { additionalProperties: false })

export const BatchBody = Type.Object({
  devices: Type.Array(BatchDevice, { minItems: 1, maxItems: MAX_BATCH, description: `1 to ${MAX_BATCH} devices with distinct ids` })
}, { additionalProperties: false })

export const BatchResult = Type.Object({
  created: Type.Array(CreatedDevice),
  failed: Type.Array(Type.Object({ id: Type.String(), error: Type.String({ description: 'IOT_ERR_DEVICE_EXISTS, IOT_ERR_VALIDATION, or IOT_ERR_UNAVAILABLE (Redis failed during the write: the device may exist; rotate its secret to get one)' }) }))
})

const idPattern = new RegExp(DEVICE_ID_PATTERN)
const checkGroups = new Ajv().compile(Groups)

/** Throws the whole batch's error, or splits it into the devices to create and those that fail alone. */
export function checkBatch (body: unknown, validationError: Error | undefined): { valid: NewDevice[], invalid: BatchFailure[] } {
  const list = (body as { devices?: unknown } | null)?.devices
  if (Array.isArray(list) && list.length > MAX_BATCH) {
    throw new PushlineError('IOT_ERR_BATCH_TOO_LARGE', `a batch holds at most ${MAX_BATCH} devices, got ${list.length}; split it`)
  }
  if (Array.isArray(list) && list.length === 0) throw new PushlineError('IOT_ERR_BATCH_EMPTY', 'the batch has no devices')
  if (validationError !== undefined) throw new PushlineError('IOT_ERR_VALIDATION', validationError.message)
  const devices = (body as Static<typeof BatchBody>).devices
  const seen = new Set<string>()
  const repeated = new Set<string>()
  for (const d of devices) {
    if (seen.has(d.id)) repeated.add(d.id)
    seen.add(d.id)
  }
  if (repeated.size > 0) {
    const some = [...repeated].slice(0, 10).map((id) => JSON.stringify(id)).join(', ')
    throw new PushlineError('IOT_ERR_BATCH_DUPLICATE_ID', `ids must be distinct within a batch; repeated: ${some}${repeated.size > 10 ? ` and ${repeated.size - 10} more` : ''}`)
  }
  const valid: NewDevice[] = []
  const invalid: BatchFailure[] = []
  for (const d of devices) {
    if (!idPattern.test(d.id) || (d.groups !== undefined && !checkGroups(d.groups))) invalid.push({ id: d.id, error: 'IOT_ERR_VALIDATION' })
    else valid.push(d)
  }
  return { valid, invalid }
}
