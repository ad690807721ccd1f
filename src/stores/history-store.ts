// Each device's downlink history: a strictly increasing per-device message id, the entries themselves (bounded
// by count and age) and a "delivered" high-water mark. An entry is appended before the downlink is sent.
// Implementations: memory-history-store.ts, redis-history-store.ts; both pass test/contract/history-store.spec.ts.

export interface HistoryEntry {
  /** Per-device sequence, from 1, strictly increasing, never reused. */
  readonly id: number
  readonly pushId: string
  /** Epoch ms when the entry was appended. */
  readonly sentAt: number
  /** Epoch ms after which the downlink is no longer delivered (the push's ttl). */
  readonly expiresAt: number
  readonly qos: 0 | 1
  readonly data: unknown
  /** The push's trace id (32 hex digits), so the node that delivers the entry logs it. */
  readonly traceId?: string
}

export type NewHistoryEntry = Omit<HistoryEntry, 'id'>

export interface HistoryRange {
  /** Entries with an id above this one (exclusive). */
  readonly after?: number
  /** Entries with an id below this one (exclusive). */
  readonly before?: number
  readonly limit: number
}

export interface HistoryLimits {
  readonly maxMessages: number
  readonly maxAgeMs: number
}

export interface HistoryStore {
  /** Gives the entry the device's next id and stores it; drops what is over the count or age bound. */
  append (deviceId: string, entry: NewHistoryEntry): Promise<HistoryEntry>
  /** Entries oldest first, within the age bound at `now`. */
  range (deviceId: string, range: HistoryRange, now?: number): Promise<HistoryEntry[]>
  get (deviceId: string, id: number): Promise<HistoryEntry | undefined>
  /** Raises the device's delivered mark to id (never lowers it). */
  markDelivered (deviceId: string, id: number): Promise<void>
  /** The highest id known delivered to the device (0 when none). */
  delivered (deviceId: string): Promise<number>
  /**
   * What a reconnecting device may still need: entries with an id above (delivered mark − belowMark), oldest
   * first, up to limit, within the age bound. One round trip in Redis (it runs on every connect).
   */
  undelivered (deviceId: string, belowMark: number, limit: number): Promise<HistoryEntry[]>
  /** Forgets the device's entries, ids and mark (the device was deleted): a device of the same id starts again from 1. */
  clear (deviceId: string): Promise<void>
}
