// Push records and receipts. A push record describes the push (target, ttl, qos) and its job progress; each
// targeted device has one receipt whose state only moves forward:
//   queued -> sent -> delivered -> acked   (forward jumps allowed, e.g. queued -> acked after a pull and an ack)
//   queued | sent -> expired
//   any state but acked, expired, failed -> failed
// A late or repeated transition changes nothing and counts nothing. Counts by state are exact: they move in the
// same atomic step as the state. Group and broadcast pushes keep counts only, of distinct devices: the store keeps
// per push the set of devices written at QoS 1, the set that got it (PUBACK, or written at QoS 0) and the set that
// acked it, and each device counts once, in the furthest of sent < delivered < acked it reached.
// Implementations: memory-receipt-store.ts, redis-receipt-store.ts; both pass test/contract/receipt-store.spec.ts.

export const receiptStates = ['queued', 'sent', 'delivered', 'acked', 'expired', 'failed'] as const
export type ReceiptState = typeof receiptStates[number]
export type ReceiptCounts = Record<ReceiptState, number>

export type PushTarget =
  | { readonly kind: 'device', readonly deviceId: string }
  | { readonly kind: 'devices', readonly count: number }
  | { readonly kind: 'group', readonly group: string }
  | { readonly kind: 'all' }

export interface PushRecord {
  readonly pushId: string
  readonly target: PushTarget
  readonly qos: 0 | 1
  readonly ttlSeconds: number
  readonly createdAt: number
  /** Trace id of the request that made the push (W3C traceparent or generated), logged wherever the push goes. */
  readonly traceId?: string
}

export interface PushStatus extends PushRecord {
  /** Targets resolved so far (job progress) and in all (known once resolution ends; for a list, at once). */
  readonly processed: number
  readonly total: number | undefined
  readonly done: boolean
  readonly counts: ReceiptCounts
}

export interface Receipt {
  readonly deviceId: string
  readonly state: ReceiptState
  /** The device's message id, when a history entry was made. */
  readonly id?: number
  readonly reason?: string
  /** Epoch ms of the last state change. */
  readonly at: number
}

export interface ReceiptPage {
  readonly receipts: Receipt[]
  /** Pass as `after` for the next page; undefined on the last one. */
  readonly next: string | undefined
}

/** Where a count-only push counts a device. */
export type CountedState = 'sent' | 'delivered' | 'acked'

/** What one countDeliveries call changed. */
export interface CountedDeliveries {
  /** Net change of the sent count (devices counted as sent minus those that moved on from it). */
  readonly sent: number
  readonly delivered: number
  /** Devices this call counted as sent. */
  readonly sentIds: string[]
  /** Devices this call counted as delivered. */
  readonly deliveredIds: string[]
}

export interface ReceiptStore {
  createPush (record: PushRecord, total: number | undefined): Promise<void>
  getPush (pushId: string): Promise<PushStatus | undefined>
  /** The latest pushes, newest first, at most `limit` (the store keeps the last RECENT_PUSHES ids). */
  recent (limit: number): Promise<PushStatus[]>
  /** Adds to the processed count; sets total and done when given. */
  progress (pushId: string, processed: number, end?: { total: number }): Promise<void>
  /** Creates receipts (queued or failed) for devices that have none yet; existing ones are left alone. */
  open (pushId: string, receipts: ReadonlyArray<Omit<Receipt, 'at'>>, at: number): Promise<void>
  /** Moves a receipt forward; resolves the receipt as it now is when it moved, undefined when it did not. */
  transition (pushId: string, deviceId: string, to: ReceiptState, at: number, reason?: string): Promise<Receipt | undefined>
  getReceipt (pushId: string, deviceId: string): Promise<Receipt | undefined>
  /** Receipts in device id order. */
  list (pushId: string, after: string | undefined, limit: number): Promise<ReceiptPage>
  /**
   * Count-only pushes (groups, broadcasts): `sent` were written the push at QoS 1, `got` PUBACKed it or were
   * written it at QoS 0. A device counts once: sent unless it got or acked it, delivered once it got it unless it
   * acked it; a repeat (a catch-up resend, a second PUBACK) counts nothing. Resolves what was added to sent and
   * delivered (sent may go down as devices move on), and which devices this call counted as sent and as delivered
   * (a device may be in both). Targeted or unknown pushes count nothing.
   */
  countDeliveries (pushId: string, sent: readonly string[], got: readonly string[]): Promise<CountedDeliveries>
  /**
   * Count-only pushes: where each device is counted, the furthest of sent < delivered < acked, or undefined when in
   * none (the check of an interrupted countDeliveries or countAcks at start, receipt-recovery.ts).
   */
  countedStates (pushId: string, deviceIds: readonly string[]): Promise<Array<CountedState | undefined>>
  /** Count-only pushes: of `pushIds`, those the device has neither got nor acked (one round trip for all). */
  notReceived (deviceId: string, pushIds: readonly string[]): Promise<string[]>
  /** Device and list pushes whose ttl ended by `at` and whose receipts are not all swept yet. */
  dueForExpiry (at: number, limit: number): Promise<string[]>
  /**
   * Expires the next `limit` receipts (in device id order) still queued or sent. The position is kept in the
   * store, so several processes may sweep at once, each taking the next page. `expired`: the receipts this call
   * expired, as they now are. `finished`: the push is fully swept and no longer due. A push whose job is still
   * running is left for later (none expired, finished false).
   */
  sweepExpired (pushId: string, limit: number, at: number): Promise<{ expired: Receipt[], finished: boolean }>
  /**
   * Count-only pushes: the devices' application acks. Each device counts once per push, moving from delivered
   * (or sent) to acked. Only devices counted in sent or delivered received the push: an ack from any other device
   * (not in the group, never written the push) counts nothing and is not remembered; acks for unknown or targeted
   * pushes count nothing. Resolves the devices whose ack counted.
   */
  countAcks (pushId: string, deviceIds: readonly string[]): Promise<string[]>
}

/** How many push ids the stores keep in their newest-first list (the dashboard's recent pushes). */
export const RECENT_PUSHES = 1000

const rank: Record<ReceiptState, number> = { queued: 0, sent: 1, delivered: 2, acked: 3, expired: 4, failed: 5 }

/** The transition rule both implementations apply (the Redis one in Lua, with the same table). */
export function mayMove (from: ReceiptState, to: ReceiptState): boolean {
  if (from === 'acked' || from === 'expired' || from === 'failed') return false
  if (to === 'failed') return true
  if (to === 'expired') return from === 'queued' || from === 'sent'
  return rank[to] > rank[from]
}

export function zeroCounts (): ReceiptCounts {
  return { queued: 0, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 0 }
}
