// The admin HTTP API as benchmarks call it: JSON in and out with the benchmark admin key, a 30 s bound per
// request, and up to two retries of a 503 (on a loaded machine a Redis command can pass its 2 s timeout); the
// retries are counted so a report can say so.

import { setTimeout as sleep } from 'node:timers/promises'
import { BENCH_ADMIN_KEY } from './brokers.ts'

export interface AdminClient {
  call (httpUrl: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>>
  /** Requests answered 503 and retried so far. */
  retries (): number
}

export function createAdminClient (log: (line: string) => void): AdminClient {
  let retried = 0
  return {
    async call (httpUrl, method, path, body) {
      for (let attempt = 1; ; attempt++) {
        const res = await fetch(`${httpUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${BENCH_ADMIN_KEY}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
          ...(body !== undefined && { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(30_000)
        })
        const text = await res.text()
        if (res.status === 503 && attempt < 3) {
          retried++
          log(`  ${method} ${path}: 503, retrying (${text.slice(0, 120)})`)
          await sleep(1000)
          continue
        }
        if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`)
        return JSON.parse(text) as Record<string, unknown>
      }
    },
    retries: () => retried
  }
}
