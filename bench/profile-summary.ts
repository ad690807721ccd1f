// Summarizes a V8 CPU profile (.cpuprofile, as written by `node --cpu-prof`, e.g. by
// `npx tsx bench/connect-rate.ts --profile`): where the busy time went, by function (self and inclusive
// time) and by module (a node_modules package, a file of ours, or Node's internals).
//
//   npx tsx bench/profile-summary.ts bench-results/profiles/connect-rate-pushline-redis-<run>.cpuprofile [--top 25]
//   npx tsx bench/profile-summary.ts <file> --callers writeUtf8String     (which stacks lead to a function)

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, formatTable } from './lib/stats.ts'

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: readonly number[]
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly endTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

/** Frames that are not work: waiting, and the profiler's bookkeeping. */
const NOT_BUSY = new Set(['(idle)', '(program)', '(root)'])

/** node_modules/<package> (scoped too), src/<path> of this repo, node:<module>, or the URL as is. */
export function moduleOf (url: string): string {
  if (url === '') return '(native / VM)'
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm !== null) return nm[1] as string
  if (url.startsWith('node:')) return url
  const ours = /\/(src|bench|test|build\/src)\/(.*)$/.exec(url)
  if (ours !== null) return `${ours[1] === 'build/src' ? 'src' : ours[1]}/${ours[2]}`
  return url
}

function frameLabel (f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName
  if (f.url === '') return name
  const file = f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench|test)\//, '$1/')
  return `${name}  ${file}:${f.lineNumber + 1}`
}

export interface ProfileSummary {
  readonly totalMs: number
  readonly busyMs: number
  readonly gcMs: number
  readonly bySelf: ReadonlyArray<{ readonly label: string, readonly ms: number }>
  readonly byInclusive: ReadonlyArray<{ readonly label: string, readonly ms: number }>
  readonly byModule: ReadonlyArray<{ readonly module: string, readonly ms: number }>
}

export function summarizeProfile (profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfUs = new Map<number, number>()
  profile.samples.forEach((id, i) => { selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)) })

  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const modules = new Map<string, number>()
  let busy = 0
  let gc = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (node === undefined || NOT_BUSY.has(node.callFrame.functionName)) continue
    busy += us
    if (node.callFrame.functionName === '(garbage collector)') gc += us
    const label = frameLabel(node.callFrame)
    self.set(label, (self.get(label) ?? 0) + us)
    const mod = node.callFrame.functionName === '(garbage collector)' ? '(garbage collector)' : moduleOf(node.callFrame.url)
    modules.set(mod, (modules.get(mod) ?? 0) + us)
    // Inclusive: once per distinct frame on the stack, so recursion is not counted twice.
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)
      if (n === undefined || NOT_BUSY.has(n.callFrame.functionName)) continue
      const l = frameLabel(n.callFrame)
      if (seen.has(l)) continue
      seen.add(l)
      inclusive.set(l, (inclusive.get(l) ?? 0) + us)
    }
  }
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => b[1] - a[1])
  return {
    totalMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busy / 1000,
    gcMs: gc / 1000,
    bySelf: sorted(self).map(([label, us]) => ({ label, ms: us / 1000 })),
    byInclusive: sorted(inclusive).map(([label, us]) => ({ label, ms: us / 1000 })),
    byModule: sorted(modules).map(([module, us]) => ({ module, ms: us / 1000 }))
  }
}

/**
 * Busy time spent in frames whose label contains `needle`, split by the chain of `depth` callers above them
 * (nearest first), so one can see which code paths lead to a hot function.
 */
export function callersOf (profile: CpuProfile, needle: string, depth = 4): Array<{ readonly stack: string, readonly ms: number }> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const out = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0
    // The innermost matching frame of the sampled stack.
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)
      if (n === undefined || !frameLabel(n.callFrame).includes(needle)) continue
      const chain: string[] = [frameLabel(n.callFrame)]
      for (let p = parent.get(cur); p !== undefined && chain.length <= depth; p = parent.get(p)) {
        const pn = byId.get(p)
        if (pn !== undefined && !NOT_BUSY.has(pn.callFrame.functionName)) chain.push(frameLabel(pn.callFrame))
      }
      const key = chain.join('\n    <- ')
      out.set(key, (out.get(key) ?? 0) + us)
      break
    }
  })
  return [...out].sort((a, b) => b[1] - a[1]).map(([stack, us]) => ({ stack, ms: us / 1000 }))
}

function main (): void {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '25' }, callers: { type: 'string' }, depth: { type: 'string', default: '4' } },
    allowPositionals: true
  })
  const top = Number(values.top)
  if (positionals.length === 0) {
    process.stderr.write('usage: npx tsx bench/profile-summary.ts <file.cpuprofile>... [--top N] [--callers TEXT [--depth N]]\n')
    process.exit(2)
  }
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
    if (values.callers !== undefined) {
      process.stdout.write(`${file}: stacks leading to frames matching "${values.callers}"\n\n`)
      for (const c of callersOf(profile, values.callers, Number(values.depth)).slice(0, top)) process.stdout.write(`${fmt(c.ms, 0).padStart(7)} ms  ${c.stack}\n`)
      continue
    }
    const s = summarizeProfile(profile)
    const pct = (ms: number): string => `${fmt(100 * ms / s.busyMs, 1)}%`
    const out = [
      `${file}`,
      `profile ${fmt(s.totalMs / 1000, 1)} s, busy (not idle) ${fmt(s.busyMs / 1000, 2)} s, of which garbage collection ${fmt(s.gcMs / 1000, 2)} s (${pct(s.gcMs)})`,
      '',
      formatTable([['module (self time)', 'ms', 'busy'], ...s.byModule.slice(0, top).map((m) => [m.module, fmt(m.ms, 0), pct(m.ms)])]),
      '',
      formatTable([['function (self time)', 'ms', 'busy'], ...s.bySelf.slice(0, top).map((f) => [f.label, fmt(f.ms, 0), pct(f.ms)])]),
      '',
      formatTable([['function (inclusive time)', 'ms', 'busy'], ...s.byInclusive.slice(0, top).map((f) => [f.label, fmt(f.ms, 0), pct(f.ms)])]),
      ''
    ]
    process.stdout.write(out.join('\n') + '\n')
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main()
