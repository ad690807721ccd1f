// What the benchmarks read about other processes on this machine, from /proc (Linux only), plus small waits.

import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

let clockTicks: number | undefined

/** Clock ticks per second of /proc/<pid>/stat times (usually 100). */
function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** Resident set size of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(m[1]) * 1024
}

/** Peak resident set size of a process so far in bytes (VmHWM of /proc/<pid>/status). */
export function peakRssBytes (pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmHWM in /proc/${pid}/status`)
  return Number(m[1]) * 1024
}

/** CPU time (user + system, all threads) a process has used so far, in seconds. Resolution: one clock tick. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Field 2 (comm) may hold spaces and parentheses: split after its closing parenthesis. Fields from 3 on follow.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(rest[14 - 3])
  const stime = Number(rest[15 - 3])
  return (utime + stime) / ticksPerSecond()
}

/** Number of open file descriptors of a process (sockets included). */
export function openFds (pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

/** A TCP port that was free on `host` a moment ago. */
export function freePort (host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Polls `condition` every `intervalMs` until it returns true; false if `timeoutMs` passes first. */
export async function waitUntil (condition: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await condition()) return true
    if (Date.now() >= deadline) return false
    await sleep(intervalMs)
  }
}

export interface QuietOptions {
  /** Quiet only once the process holds at most this many open file descriptors. */
  readonly maxFds?: number
  /** Quiet only once the process used less than this share of one core over a `windowMs` window (default 0.05). */
  readonly maxCpuShare?: number
  readonly windowMs?: number
  readonly timeoutMs?: number
}

/**
 * Waits until a process has closed its extra sockets and stopped working (e.g. a broker done with the
 * disconnects of the previous round). Resolves to false, not an error, when it does not get quiet in time.
 */
export async function waitForQuiet (pid: number, opts: QuietOptions = {}): Promise<boolean> {
  const { maxFds, maxCpuShare = 0.05, windowMs = 250, timeoutMs = 60_000 } = opts
  const deadline = Date.now() + timeoutMs
  if (maxFds !== undefined && !await waitUntil(() => openFds(pid) <= maxFds, timeoutMs)) return false
  for (;;) {
    const cpu0 = cpuSeconds(pid)
    const t0 = performance.now()
    await sleep(windowMs)
    const share = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000)
    if (share < maxCpuShare) return true
    if (Date.now() >= deadline) return false
  }
}

/**
 * TCP counters of this network namespace (TcpExt in /proc/net/netstat), e.g. ListenOverflows and ListenDrops
 * (connections dropped because a listener's accept queue was full) and TCPSynRetrans (SYNs sent again, each
 * costing the connecting side at least a second). They count every socket on the machine: compare before and after.
 */
export function tcpExtCounters (): Record<string, number> {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n')
  const out: Record<string, number> = {}
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] as string).split(/\s+/)
    const values = (lines[i + 1] as string).split(/\s+/)
    if (names[0] !== 'TcpExt:') continue
    names.forEach((name, j) => { if (j > 0) out[name] = Number(values[j]) })
  }
  return out
}

/** CPU seconds the whole machine has spent so far (all CPUs, /proc/stat), by kind. */
export interface MachineCpu {
  /** user + nice + system + irq + softirq + steal */
  readonly busy: number
  /**
   * irq + softirq: kernel work not charged to any process. On loopback most TCP processing (the receiving
   * side of every packet) runs in softirq, so a connect benchmark shows a lot of it.
   */
  readonly interrupts: number
}

/**
 * The machine's CPU time so far. Its difference over a measurement, minus what the measured processes used, is
 * what everything else took: a check that nobody else was competing for the cores.
 */
export function machineCpu (): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string
  const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).map(Number)
  const t = ticksPerSecond()
  return { busy: (user + nice + system + irq + softirq + steal) / t, interrupts: (irq + softirq) / t }
}

/** CPU seconds the whole machine has been busy so far (all CPUs); see machineCpu(). */
export function machineBusySeconds (): number {
  return machineCpu().busy
}
