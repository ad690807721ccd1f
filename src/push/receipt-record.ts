import type { Message } from 'kafkajs'
import { PushlineError } from '../shared/errors.ts'
import { receiptStates, type ReceiptState } from '../stores/receipt-store.ts'
import type { SpoolRecord } from '../uplink/file-spool.ts'
import type { Uplink } from '../uplink/uplink.ts'

// One receipt transition as a record of the receipts stream (Kafka topic `iot.receipts` by default): key = device id,
// value = JSON {pushId, deviceId, state, id, at, nodeId, traceId}, keys always in this order, every key present.
// On the way to Kafka the record waits in the process's receipts spool, stored in the spool's frame with the value
// as its payload, so the frame's other fields only carry what the spool needs (see toSpoolEntry).

export interface ReceiptRecord {
  readonly pushId: string
  readonly deviceId: string
  readonly state: ReceiptState
  /** The device's message id; null where there is none (a failed receipt of an unknown device, group and broadcast pushes). */
  readonly id: number | null
  /** Epoch ms of the transition. */
  readonly at: number
  /** The process that made the transition. */
  readonly nodeId: string
  /** Trace id of the request that made the push; null for a push made without one (before trace ids existed). */
  readonly traceId: string | null
}

/** The spool frame's kind of a receipt record (the uplink spool holds `telemetry` and `events`). */
export const RECEIPT_SPOOL_KIND = 'receipt'

export function encodeReceiptRecord (r: ReceiptRecord): Buffer {
  // Built key by key: the order is part of what consumers see, whatever order the caller's object had.
  return Buffer.from(JSON.stringify({ pushId: r.pushId, deviceId: r.deviceId, state: r.state, id: r.id, at: r.at, nodeId: r.nodeId, traceId: r.traceId }))
}

const invalid = (why: string): PushlineError => new PushlineError('IOT_ERR_VALIDATION', `not a receipt record: ${why}`)
const states: ReadonlySet<string> = new Set(receiptStates)

/** Reads a record's value as a consumer does; throws IOT_ERR_VALIDATION naming the first field that is wrong. */
export function decodeReceiptRecord (value: Buffer | string): ReceiptRecord {
  let v: unknown
  try {
    v = JSON.parse(value.toString())
  } catch {
    throw invalid('the value is not JSON')
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid('the value is not a JSON object')
  const o = v as Record<string, unknown>
  const text = (k: string): string => {
    if (typeof o[k] !== 'string' || o[k] === '') throw invalid(`${k} is not a non-empty string`)
    return o[k]
  }
  const pushId = text('pushId')
  const deviceId = text('deviceId')
  const nodeId = text('nodeId')
  if (typeof o.state !== 'string' || !states.has(o.state)) throw invalid(`state is not one of ${receiptStates.join(', ')}`)
  if (o.id !== null && !(Number.isSafeInteger(o.id) && (o.id as number) > 0)) throw invalid('id is neither null nor a positive integer')
  if (!Number.isSafeInteger(o.at) || (o.at as number) < 0) throw invalid('at is not epoch ms')
  if (o.traceId !== null && typeof o.traceId !== 'string') throw invalid('traceId is neither null nor a string')
  return { pushId, deviceId, state: o.state as ReceiptState, id: o.id as number | null, at: o.at as number, nodeId, traceId: o.traceId as string | null }
}

/**
 * The record in the spool's frame: the encoded value as payload; msgId (pushId/deviceId/state) names the transition
 * in the shipper's logs and the dead-letter file.
 */
export function toSpoolEntry (r: ReceiptRecord): Uplink {
  return {
    msgId: `${r.pushId}/${r.deviceId}/${r.state}`,
    deviceId: r.deviceId,
    topic: '',
    kind: RECEIPT_SPOOL_KIND,
    qos: 1,
    nodeId: r.nodeId,
    receivedAt: r.at,
    traceId: r.traceId ?? '',
    payload: encodeReceiptRecord(r)
  }
}

/** The Kafka record of a spooled receipt record: key = device id, value = the JSON, no headers. */
export function receiptKafkaMessage (r: SpoolRecord): Message {
  return { key: r.deviceId, value: r.payload }
}
