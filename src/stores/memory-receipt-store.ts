import { RECENT_PUSHES, mayMove, zeroCounts, type PushRecord, type PushStatus, type Receipt, type ReceiptCounts, type ReceiptStore } from './receipt-store.ts'

interface PushEntry {
  record: PushRecord
  processed: number
  total: number | undefined
  done: boolean
  /** Expiry sweep: the last device id swept, or true once done. */
  sweep: string | true | undefined
  /** Count-only pushes: devices counted as sent, that got the push, that acked it. */
  sent: Set<string>
  got: Set<string>
  ackers: Set<string>
  counts: ReceiptCounts
  receipts: Map<string, Receipt>
}

export function createMemoryReceiptStore (): ReceiptStore {
  const pushes = new Map<string, PushEntry>()
  const countOnly = (pushId: string): PushEntry | undefined => {
    const p = pushes.get(pushId)
    return p === undefined || p.record.target.kind === 'device' || p.record.target.kind === 'devices' ? undefined : p
  }
  const status = (p: PushEntry): PushStatus => ({ ...p.record, processed: p.processed, total: p.total, done: p.done, counts: { ...p.counts } })
  return {
    async createPush (record, total) {
      pushes.set(record.pushId, { record, processed: 0, total, done: false, sweep: undefined, sent: new Set(), got: new Set(), ackers: new Set(), counts: zeroCounts(), receipts: new Map() })
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
      if (p === undefined || r === undefined || !mayMove(r.state, to)) return undefined
      p.counts[r.state]--
      p.counts[to]++
      const moved = { ...r, state: to, at, ...(reason !== undefined && { reason }) }
      p.receipts.set(deviceId, moved)
      return moved
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
    async countDeliveries (pushId, sent, got) {
      const p = countOnly(pushId)
      const added = { sent: 0, delivered: 0, sentIds: [] as string[], deliveredIds: [] as string[] }
      if (p === undefined) return added
      for (const id of sent) {
        if (p.got.has(id) || p.ackers.has(id) || p.sent.has(id)) continue
        p.sent.add(id)
        added.sent++
        added.sentIds.push(id)
      }
      for (const id of got) {
        if (p.got.has(id)) continue
        p.got.add(id)
        if (p.ackers.has(id)) continue
        added.delivered++
        added.deliveredIds.push(id)
        if (p.sent.has(id)) added.sent--
      }
      p.counts.sent += added.sent
      p.counts.delivered += added.delivered
      return added
    },
    async countedStates (pushId, deviceIds) {
      const p = countOnly(pushId)
      return deviceIds.map((id) => p === undefined ? undefined : p.ackers.has(id) ? 'acked' : p.got.has(id) ? 'delivered' : p.sent.has(id) ? 'sent' : undefined)
    },
    async notReceived (deviceId, pushIds) {
      return pushIds.filter((id) => {
        const p = countOnly(id)
        return p !== undefined && !p.got.has(deviceId) && !p.ackers.has(deviceId)
      })
    },
    async dueForExpiry (at, limit) {
      const due: string[] = []
      for (const [id, p] of pushes) {
        const kind = p.record.target.kind
        if (due.length >= limit) break
        if ((kind === 'device' || kind === 'devices') && p.sweep !== true && p.record.createdAt + p.record.ttlSeconds * 1000 <= at) due.push(id)
      }
      return due
    },
    async sweepExpired (pushId, limit, at) {
      const p = pushes.get(pushId)
      if (p === undefined || p.sweep === true) return { expired: [], finished: true }
      if (!p.done) return { expired: [], finished: false }
      const from = p.sweep
      const ids = [...p.receipts.keys()].filter((id) => from === undefined || id > from).sort().slice(0, limit)
      const expired: Receipt[] = []
      for (const id of ids) {
        const r = p.receipts.get(id) as Receipt
        if (!mayMove(r.state, 'expired')) continue
        p.counts[r.state]--
        p.counts.expired++
        const moved: Receipt = { ...r, state: 'expired', at }
        p.receipts.set(id, moved)
        expired.push(moved)
      }
      p.sweep = ids.length < limit ? true : ids[ids.length - 1]
      return { expired, finished: p.sweep === true }
    },
    async countAcks (pushId, deviceIds) {
      const p = countOnly(pushId)
      if (p === undefined) return []
      const added: string[] = []
      for (const id of deviceIds) {
        if (p.ackers.has(id)) continue
        if (p.got.has(id)) p.counts.delivered--
        else if (p.sent.has(id)) p.counts.sent--
        else continue
        p.ackers.add(id)
        added.push(id)
      }
      p.counts.acked += added.length
      return added
    }
  }
}
