// Small statistics and reporting helpers shared by the benchmarks.

import { cpus, totalmem, release, platform } from 'node:os'

/** The q-quantile (0..1) of an ascending array, nearest-rank; 0 for an empty one. */
export function percentile (sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

/** Median (mean of the two middle values for an even count); NaN for none. */
export function median (values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

export interface MachineInfo {
  readonly cpus: number
  readonly cpuModel: string
  readonly totalMemoryMiB: number
  readonly node: string
  readonly platform: string
  readonly kernel: string
}

export function machineInfo (): MachineInfo {
  const list = cpus()
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    totalMemoryMiB: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    platform: platform(),
    kernel: release()
  }
}

/** A plain-text table: the first row is the header; columns after the first are right-aligned. */
export function formatTable (rows: ReadonlyArray<readonly string[]>): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  const line = (row: readonly string[]): string => row.map((cell, i) => i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)).join('  ')
  const [header, ...body] = rows
  if (header === undefined) return ''
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

/** 12,345 */
export function fmtInt (n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'
}

/** 1.23 with `digits` decimals, '-' when not finite. */
export function fmt (n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-'
}

/** Bytes as "12.3 KiB" / "45.6 MiB". */
export function fmtBytes (n: number): string {
  if (!Number.isFinite(n)) return '-'
  if (Math.abs(n) >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  if (Math.abs(n) >= 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${Math.round(n)} B`
}
