import { RECENT_PUSHES, mayMove, zeroCounts, type PushRecord, type PushStatus, type Receipt, type ReceiptCounts, type ReceiptStore } from './receipt-store.ts'

interface PushEntry {
  record: PushRecord
  processed: number
  total: number | undefined
  done: boolean
  swept: boolean
  counts: ReceiptCounts
  receipts: Map<string, Receipt>
}

export function createMemoryReceiptStore (): ReceiptStore {
  const pushes = new Map<string, PushEntry>()
  const status = (p: PushEntry): PushStatus => ({ ...p.record, processed: p.processed, total: p.total, done: p.done, counts: { ...p.counts } })
  return {
    async createPush (record, total) {
      pushes.set(record.pushId, { record, processed: 0, total, done: false, swept: false, counts: zeroCounts(), receipts: new Map() })
    },
    async getPush (pushId): Promise<PushStatus | undefined> {
      const p = pushes.get(pushId)
      return p === undefined ? undefined : status(p)
    },
    async recent (limit) {
      // The map keeps creation order; the list is bounded like the Redis one.
      return [...pushes.values()].slice(-Math.min(limit, RECENT_PUSHES)).reverse().map(status)
    },
    async progress (pushId, processed, end) {
      const p = pushes.get(pushId)
      if (p === undefined) return
      p.processed += processed
      if (end !== undefined) { p.total = end.total; p.done = true }
    },
    async open (pushId, receipts, at) {
      const p = pushes.get(pushId)
      if (p === undefined) return
      for (const r of receipts) {
        if (p.receipts.has(r.deviceId)) continue
        p.receipts.set(r.deviceId, { ...r, at })
        p.counts[r.state]++
      }
    },
    async transition (pushId, deviceId, to, at, reason) {
      const p = pushes.get(pushId)
      const r = p?.receipts.get(deviceId)
      if (p === undefined || r === undefined || !mayMove(r.state, to)) return false
      p.counts[r.state]--
      p.counts[to]++
      p.receipts.set(deviceId, { ...r, state: to, at, ...(reason !== undefined && { reason }) })
      return true
    },
    async getReceipt (pushId, deviceId) {
      return pushes.get(pushId)?.receipts.get(deviceId)
    },
    async list (pushId, after, limit) {
      const p = pushes.get(pushId)
      if (p === undefined) return { receipts: [], next: undefined }
      const ids = [...p.receipts.keys()].filter((id) => after === undefined || id > after).sort()
      const page = ids.slice(0, limit)
      return { receipts: page.map((id) => p.receipts.get(id) as Receipt), next: ids.length > limit ? page[page.length - 1] : undefined }
    },
    async addCounts (pushId, delta) {
      const p = pushes.get(pushId)
      if (p === undefined) return
      for (const [state, n] of Object.entries(delta) as Array<[keyof ReceiptCounts, number]>) p.counts[state] += n
    },
    async claimExpirySweep (pushId) {
      const p = pushes.get(pushId)
      if (p === undefined || p.swept) return false
      p.swept = true
      return true
    }
  }
}
