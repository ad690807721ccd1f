import type { DeviceStore } from './device-store.ts'
import type { HistoryStore } from './history-store.ts'
import type { PushJobBody, PushJobStore } from './push-job-store.ts'
import type { ReceiptStore } from './receipt-store.ts'

// Embedded mode: one process, so the job lives as long as the process; commit() runs its writes without
// yielding to another commit of the same job (the cursor moves before the first await).

interface Job {
  readonly ids: readonly string[]
  readonly body: PushJobBody
  cursor: number
  ordered: number
  owner: string | undefined
  leaseUntil: number
}

export function createMemoryPushJobStore ({ devices, history, receipts }: { devices: DeviceStore, history: HistoryStore, receipts: ReceiptStore }): PushJobStore {
  const jobs = new Map<string, Job>()
  return {
    async create (pushId, ids, body) {
      jobs.set(pushId, { ids: [...ids], body, cursor: 0, ordered: 0, owner: undefined, leaseUntil: 0 })
    },
    async claim (owner, leaseMs, at) {
      for (const [pushId, job] of jobs) {
        if (job.leaseUntil > at) continue
        job.owner = owner
        job.leaseUntil = at + leaseMs
        return pushId
      }
      return undefined
    },
    async renew (pushId, owner, leaseMs, at) {
      const job = jobs.get(pushId)
      if (job === undefined || job.owner !== owner) return false
      job.leaseUntil = at + leaseMs
      return true
    },
    async next (pushId, limit) {
      const job = jobs.get(pushId)
      if (job === undefined) return undefined
      return { cursor: job.cursor, ids: job.ids.slice(job.cursor, job.cursor + limit), total: job.ids.length, body: job.body, ordered: job.ordered }
    },
    async commit (pushId, cursor, candidates, invalid, entry) {
      const job = jobs.get(pushId)
      if (job === undefined || job.cursor !== cursor) return undefined
      job.cursor += candidates.length + invalid.length
      const found = await Promise.all(candidates.map(async (id) => await devices.get(id) !== undefined))
      const known = candidates.filter((_, i) => found[i])
      const unknown = [...candidates.filter((_, i) => !found[i]), ...invalid]
      const entries = await Promise.all(known.map((id) => history.append(id, entry)))
      await receipts.open(pushId, [
        ...known.map((deviceId, i) => ({ deviceId, state: 'queued' as const, id: entries[i]?.id as number })),
        ...unknown.map((deviceId) => ({ deviceId, state: 'failed' as const, reason: 'unknown device' }))
      ], entry.sentAt)
      await receipts.progress(pushId, candidates.length + invalid.length)
      const ids = new Map(known.map((id, i) => [id, entries[i]?.id as number]))
      return candidates.map((id) => ids.get(id) ?? null)
    },
    async markOrdered (pushId, position) {
      const job = jobs.get(pushId)
      if (job !== undefined) job.ordered = Math.max(job.ordered, Math.min(position, job.cursor))
    },
    async range (pushId, from, to) {
      return jobs.get(pushId)?.ids.slice(from, to) ?? []
    },
    async finish (pushId) {
      jobs.delete(pushId)
    }
  }
}
