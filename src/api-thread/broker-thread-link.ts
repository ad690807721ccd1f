import type { MessagePort } from 'node:worker_threads'
import type { ReadinessReport } from '../http/routes/health.ts'
import type { MetricsSnapshot } from '../metrics/merged-metrics.ts'
import type { Asked, FromApiThread, ToApiThread } from './thread-messages.ts'

// The API thread's questions to the broker thread of its process (src/api-thread/start-api-thread.ts answers
// them): its readiness and its metrics, which the API's port reports for the whole process, and the drop of a
// deleted device's session.

/** Longest wait for an answer: a broker thread that cannot answer in that time is reported as not ready. */
const ASK_TIMEOUT_MS = 5000

export interface BrokerThread {
  readiness (): Promise<ReadinessReport>
  metrics (): Promise<MetricsSnapshot>
  /** Drops the device's session on the broker thread (src/cluster/local-node.ts). */
  forgetSession (deviceId: string): Promise<void>
  /** Hands an answer that arrived on the port to the question waiting for it. */
  answered (message: Extract<ToApiThread, { type: 'answer' }>): void
}

export function linkBrokerThread (port: MessagePort): BrokerThread {
  const waiting = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  let next = 0
  const ask = async <K extends keyof Asked>(what: K, deviceId?: string): Promise<Asked[K]> => {
    const id = next++
    let timer: NodeJS.Timeout | undefined
    try {
      return await new Promise<Asked[K]>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (value: unknown) => void, reject })
        timer = setTimeout(() => { reject(new Error(`the broker thread did not answer within ${ASK_TIMEOUT_MS} ms`)) }, ASK_TIMEOUT_MS)
        port.postMessage({ type: 'ask', id, what, ...(deviceId !== undefined && { deviceId }) } satisfies FromApiThread)
      })
    } finally {
      clearTimeout(timer)
      waiting.delete(id)
    }
  }
  return {
    readiness: async () => await ask('readiness'),
    metrics: async () => await ask('metrics'),
    forgetSession: async (deviceId) => { await ask('forgetSession', deviceId) },
    answered (message) {
      const w = waiting.get(message.id)
      if (w === undefined) return
      if (message.error !== undefined) w.reject(new Error(message.error))
      else w.resolve(message.value)
    }
  }
}
