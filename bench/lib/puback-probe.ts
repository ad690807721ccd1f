// The PUBACK probe of bench/onboarding.ts in a process of its own (puback-probe-worker.ts), started through nice(1)
// (and taskset(1) when given CPUs) so every thread of it has the priority and CPUs asked for. One process for all
// phases; each phase connects afresh.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { PubackProbeJob, PubackProbeReport } from './puback-probe-protocol.ts'
import { onCpus } from './cpu-affinity.ts'
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

/**
 * Starts the probe process at `nice` (below 0 needs CAP_SYS_NICE) on `cpus` (undefined: this process's CPUs) and
 * resolves once it runs the probe's code, so /proc reads back what it runs with.
 */
export async function startPubackProbeProcess (nice: number, cpus: readonly number[] | undefined): Promise<PubackProbe> {
  const cmd = onCpus(cpus, 'nice', ['-n', String(nice), process.execPath, '--import', 'tsx', WORKER])
  const child: ChildProcess = track(spawn(cmd.command, cmd.args, {
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
  const ready = next()
  // Awaited below, once the process runs; a failed spawn throws first.
  ready.catch(() => {})
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  if ((await ready).type !== 'ready') throw new Error('PUBACK probe did not start')
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
