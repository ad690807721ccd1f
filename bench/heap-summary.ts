// Where a heap goes: reads a V8 .heapsnapshot (e.g. from bench/idle-connections.ts --heap-snapshot) and prints
// the object kinds holding the most memory by their own size, with counts, and per connection when told how
// many connections the process held. With --base (the same process idle), what the connections added: objects
// whose count grew by a multiple of the connections are per-connection state (sockets, parsers, clients, timers).
//
//   npx tsx bench/heap-summary.ts bench-results/profiles/idle-<run>.heapsnapshot --base bench-results/profiles/idle-<run>-base.heapsnapshot --per 19000

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { intOption, runBench, UsageError } from './lib/lifecycle.ts'
import { fmt, fmtBytes, fmtInt, formatTable } from './lib/stats.ts'

const USAGE = `usage: npx tsx bench/heap-summary.ts <file.heapsnapshot> [--base <file.heapsnapshot>] [--per N] [--top N]

  --base F   subtract this snapshot (the same process before the load) kind by kind
  --per N    divide by N (e.g. the connections the process held) in an extra column
  --top N    rows to print (default 40)`

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[], readonly node_types: [string[], ...unknown[]] } }
  readonly nodes: number[]
  readonly strings: string[]
}

/** Own size and count per object kind: objects, closures and native objects by name, the rest by type. */
function groupByKind (file: string): Map<string, { count: number, bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const stride = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const groups = new Map<string, { count: number, bytes: number }>()
  for (let i = 0; i < snap.nodes.length; i += stride) {
    const type = types[snap.nodes[i + typeAt] as number] ?? '?'
    const rawName = snap.strings[snap.nodes[i + nameAt] as number] ?? ''
    const name = type === 'object' || type === 'closure' || type === 'native' ? rawName.slice(0, 60) : ''
    const key = `${type}${name === '' ? '' : ' ' + name}`
    const g = groups.get(key) ?? { count: 0, bytes: 0 }
    g.count++
    g.bytes += snap.nodes[i + sizeAt] as number
    groups.set(key, g)
  }
  return groups
}

async function main (): Promise<void> {
  const { values, positionals } = parseArgs({ options: { base: { type: 'string' }, per: { type: 'string' }, top: { type: 'string', default: '40' }, help: { type: 'boolean', default: false } }, allowPositionals: true, strict: true })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    return
  }
  const file = positionals[0]
  if (file === undefined) throw new UsageError('no .heapsnapshot file given')
  const per = values.per === undefined ? undefined : intOption('per', values.per, 1, 10_000_000)
  const top = intOption('top', values.top, 1, 10_000)
  const groups = groupByKind(file)
  if (values.base !== undefined) {
    for (const [key, g] of groupByKind(values.base)) {
      const a = groups.get(key) ?? { count: 0, bytes: 0 }
      groups.set(key, { count: a.count - g.count, bytes: a.bytes - g.bytes })
    }
  }
  let total = 0
  for (const g of groups.values()) total += g.bytes
  const rows = [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)
  process.stdout.write(formatTable([
    ['kind', 'count', 'self size', 'share', ...(per === undefined ? [] : ['count/N', 'bytes/N'])],
    ...rows.map(([key, g]) => [key, fmtInt(g.count), fmtBytes(g.bytes), `${fmt(g.bytes / total * 100, 1)}%`,
      ...(per === undefined ? [] : [fmt(g.count / per, 2), fmtInt(g.bytes / per)])])
  ]) + `\n\n${values.base === undefined ? 'total self size' : 'added self size'} ${fmtBytes(total)}${per === undefined ? '' : `, ${fmtInt(total / per)} bytes per ${fmtInt(per)}th`}\n`)
}

await runBench(main, USAGE)
