import type { Counter } from 'prom-client'
import type { ReceiptState, ReceiptStore } from '../stores/receipt-store.ts'

// Counts receipt transitions by the state entered (pushline_receipts_total), around any ReceiptStore: opening
// counts its initial states, a transition counts only when it moved, count-only pushes count the devices they add.
// Each process counts the transitions it made (the API: queued, failed, pulls, expiry; nodes: sent, delivered, acked).

export function countReceipts (store: ReceiptStore, counter: Counter<'state'>): ReceiptStore {
  const count = (state: ReceiptState, n = 1): void => { if (n > 0) counter.inc({ state }, n) }
  return {
    ...store,
    async open (pushId, receipts, at) {
      await store.open(pushId, receipts, at)
      for (const r of receipts) count(r.state)
    },
    async transition (pushId, deviceId, to, at, reason) {
      const moved = await store.transition(pushId, deviceId, to, at, reason)
      if (moved !== undefined) count(to)
      return moved
    },
    async countDeliveries (pushId, sent, got) {
      const added = await store.countDeliveries(pushId, sent, got)
      // Net of the devices that moved on to delivered in the same call: a negative delta counts nothing.
      count('sent', added.sent)
      count('delivered', added.delivered)
      return added
    },
    async countAcks (pushId, deviceIds) {
      const added = await store.countAcks(pushId, deviceIds)
      count('acked', added.length)
      return added
    }
  }
}
