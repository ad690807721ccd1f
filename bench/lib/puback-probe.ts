// The PUBACK probe of bench/onboarding.ts in a process of its own (puback-probe-worker.ts), started through nice(1)
// so every thread of it has the priority asked for. One process for all phases; each phase connects afresh.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { PubackProbeJob, PubackProbeReport } from './puback-probe-protocol.ts'
import { track } from './lifecycle.ts'

const WORKER = fileURLToPath(new URL('./puback-probe-worker.ts', import.meta.url))

export interface ProbePhase { readonly sent: number, readonly latencies: number[] }

export interface PubackProbe {
  readonly pid: number
  /** Connects and publishes at `rate` until the returned stop(), which resolves with each PUBACK's time in ms. */
  start (url: string, id: string, token: string, rate: number): Promise<{ stop: () => Promise<ProbePhase> }>
  close (): void
}

/** The nice value a process runs at: field 19 of /proc/<pid>/stat (after the parenthesised command name). */
export function niceOf (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
}

/** Starts the probe process at `nice` (below 0 needs CAP_SYS_NICE); it inherits this process's CPU affinity. */
export async function startPubackProbeProcess (nice: number): Promise<PubackProbe> {
  const child: ChildProcess = track(spawn('nice', ['-n', String(nice), process.execPath, '--import', 'tsx', WORKER], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced'
  }))
  const next = (): Promise<PubackProbeReport> => new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`PUBACK probe exited (${code}) mid-phase`))
    child.once('exit', onExit)
    child.once('message', (m: PubackProbeReport) => {
      child.off('exit', onExit)
      if (m.type === 'failed') reject(new Error(`PUBACK probe: ${m.message}`))
      else resolve(m)
    })
  })
  const ask = async (job: PubackProbeJob): Promise<PubackProbeReport> => {
    const answer = next()
    child.send(job)
    return await answer
  }
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  return {
    pid: child.pid as number,
    async start (url, id, token, rate) {
      await ask({ type: 'start', url, id, token, rate })
      return {
        async stop () {
          const r = await ask({ type: 'stop' })
          if (r.type !== 'stopped') throw new Error(`PUBACK probe answered ${r.type} to stop`)
          return { sent: r.sent, latencies: r.latencies }
        }
      }
    },
    close () { child.kill() }
  }
}
