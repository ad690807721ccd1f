// CPU affinity for benchmarks that model a host whose cores the platform does not share with its clients (Linux,
// util-linux's taskset): the option that splits this machine's CPUs in two, a command line that starts a program on
// a set from its first instruction, pinning a running process with all its threads, and reading back where a
// process may run.

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus as cpuInfo } from 'node:os'
import { onCleanup, UsageError } from './lifecycle.ts'

export interface CpuSplit {
  /** The CPUs of the platform's process. */
  readonly platform: readonly number[]
  /** The CPUs of everything else the benchmark starts or drives (its own process, load generators, Redis). */
  readonly others: readonly number[]
}

/** The CPU numbers of a taskset-style list ("1", "0-2", "0,2"), each on this machine. */
function cpuList (name: string, raw: string, count: number): number[] {
  const out = new Set<number>()
  for (const item of raw.split(',')) {
    const bad = new UsageError(`--${name}: "${item}" is not a CPU list of this machine's CPUs 0-${count - 1}`)
    const m = /^(\d+)(?:-(\d+))?$/.exec(item.trim())
    if (m === null) throw bad
    const from = Number(m[1])
    const to = m[2] === undefined ? from : Number(m[2])
    if (to < from || to >= count) throw bad
    for (let cpu = from; cpu <= to; cpu++) out.add(cpu)
  }
  return [...out].sort((a, b) => a - b)
}

/** A CPU list option (e.g. "0", "0-1"): CPUs of this machine. */
export function cpuListOption (name: string, raw: string): number[] {
  return cpuList(name, raw, cpuInfo().length)
}

/** A PLATFORM:OTHERS option (e.g. "0:1"): two CPU lists of this machine that share no CPU. */
export function cpuSplitOption (name: string, raw: string): CpuSplit {
  const halves = raw.split(':')
  if (halves.length !== 2) throw new UsageError(`--${name} takes PLATFORM:OTHERS CPU lists, e.g. 0:1, got "${raw}"`)
  // All of the machine's CPUs, whatever set this process was started on.
  const count = cpuInfo().length
  const platform = cpuList(name, halves[0] as string, count)
  const others = cpuList(name, halves[1] as string, count)
  const shared = platform.filter((cpu) => others.includes(cpu))
  if (shared.length > 0) throw new UsageError(`--${name}: CPU ${shared.join(',')} is in both lists`)
  return { platform, others }
}

/** The command and arguments that run `command` on `cpus` (all of them when undefined); taskset execs it, so the pid is the program's. */
export function onCpus (cpus: readonly number[] | undefined, command: string, args: readonly string[]): { command: string, args: string[] } {
  return cpus === undefined ? { command, args: [...args] } : { command: 'taskset', args: ['-c', cpus.join(','), command, ...args] }
}

/** The CPUs a process may run on: Cpus_allowed_list of /proc/<pid>/status, e.g. "0-1". */
export function allowedCpus (pid: number): string {
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no Cpus_allowed_list in /proc/${pid}/status`)
  return m[1] as string
}

/**
 * Pins every thread of a running process to `cpus` (a list or a taskset-style string); threads it starts later and
 * children it forks inherit the set. Returns the list it had, to restore it with another call.
 */
function pinProcess (pid: number, cpus: readonly number[] | string): string {
  const before = allowedCpus(pid)
  execFileSync('taskset', ['-a', '-p', '-c', typeof cpus === 'string' ? cpus : cpus.join(','), String(pid)], { stdio: 'ignore', timeout: 10_000 })
  return before
}

/** Pins this process (all its threads) to `cpus` until the returned function, or the benchmark's cleanup, gives it back the set it had. */
export function pinThisProcess (cpus: readonly number[]): () => void {
  const before = pinProcess(process.pid, cpus)
  let pinned = true
  const restore = (): void => {
    if (!pinned) return
    pinned = false
    pinProcess(process.pid, before)
  }
  onCleanup('give this process back its CPUs', restore)
  return restore
}
