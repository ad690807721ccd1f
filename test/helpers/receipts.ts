import type { ReceiptRecord } from '../../src/push/receipt-record.ts'
import { zeroCounts, type ReceiptCounts, type ReceiptState } from '../../src/stores/receipt-store.ts'

// What a consumer of the receipts stream does (docs/receipts-stream.md): drop replays by (pushId, deviceId, state),
// keep per device the furthest state it reached, count devices per state.

const rank: Record<ReceiptState, number> = { queued: 0, sent: 1, delivered: 2, acked: 3, expired: 4, failed: 5 }

/** Records with a (pushId, deviceId, state) seen before dropped, first copy kept. */
export function dedupeReceipts (records: readonly ReceiptRecord[]): ReceiptRecord[] {
  const seen = new Set<string>()
  return records.filter((r) => {
    const key = `${r.pushId}\u0000${r.deviceId}\u0000${r.state}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

/** Each device's state in one push: the furthest of its records. */
export function finalStates (records: readonly ReceiptRecord[], pushId: string): Map<string, ReceiptRecord> {
  const out = new Map<string, ReceiptRecord>()
  for (const r of records) {
    if (r.pushId !== pushId) continue
    const before = out.get(r.deviceId)
    if (before === undefined || rank[r.state] > rank[before.state]) out.set(r.deviceId, r)
  }
  return out
}

/** The push's counts as GET /v1/admin/push/{id} gives them, rebuilt from the records. */
export function rebuildCounts (records: readonly ReceiptRecord[], pushId: string): ReceiptCounts {
  const counts = zeroCounts()
  for (const r of finalStates(records, pushId).values()) counts[r.state]++
  return counts
}
