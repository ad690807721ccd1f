// The common shape every benchmark can write with --summary <path>, so that the suite (npm run bench) can put
// the figures of all scenarios into one Markdown and JSON report: our figure, the reference figure measured in
// the same run (Mosquitto where the scenario applies), their ratio and the target it reports against.

import { writeReport } from './lifecycle.ts'

export interface SummaryFigure {
  /** What was measured, e.g. "broadcast: all received". */
  readonly name: string
  /** Unit of ours and reference, e.g. "ms", "connects/s", "KB/conn". */
  readonly unit: string
  readonly ours: number | null
  /** The reference broker's figure from the same run, when the scenario has one. */
  readonly reference?: number | null
  /** ours / reference, when both are known. */
  readonly ratio?: number | null
  /** The target as text, e.g. ">= 5000" or "<= 2000". */
  readonly target?: string
  /** Whether ours meets the target; absent when there is no target. */
  readonly met?: boolean
}

export interface BenchSummary {
  readonly scenario: string
  /** The command line that produced it. */
  readonly command: string
  readonly at: string
  readonly figures: readonly SummaryFigure[]
  readonly notes?: readonly string[]
}

/** Builds a figure, computing the ratio and checking a target of the form ">= n" or "<= n". */
export function figure (f: Omit<SummaryFigure, 'ratio' | 'met'>): SummaryFigure {
  const ratio = f.ours !== null && f.reference !== undefined && f.reference !== null && f.reference !== 0
    ? Math.round((f.ours / f.reference) * 1000) / 1000
    : (f.reference === undefined ? undefined : null)
  let met: boolean | undefined
  const m = f.target === undefined ? null : /^\s*(>=|<=)\s*([\d.]+)\s*$/.exec(f.target)
  if (m !== null && m !== undefined) met = f.ours !== null && (m[1] === '>=' ? f.ours >= Number(m[2]) : f.ours <= Number(m[2]))
  return { ...f, ...(ratio === undefined ? {} : { ratio }), ...(met === undefined ? {} : { met }) }
}

export async function writeSummary (path: string, scenario: string, figures: readonly SummaryFigure[], notes: readonly string[] = []): Promise<void> {
  const summary: BenchSummary = { scenario, command: process.argv.slice(1).join(' '), at: new Date().toISOString(), figures, notes }
  await writeReport(path, summary)
}
