// The benchmark suite at smoke sizes (npm run bench -- --quick), so the benchmarks cannot rot: every scenario
// that runs must write its summary with numbers in it. Figures and targets are not checked: a benchmark reports,
// it never fails the tests. The benchmark scripts only: the devices-sim scenario files have smoke runs of their own
// (test/integration/devices-sim.test.ts), and the suite plays them the same way.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import test from 'node:test'
import { redisUrl } from '../helpers/services.ts'
import { ROOT, tempDir } from '../helpers/process.ts'

interface Report {
  readonly scenarios: ReadonlyArray<{
    readonly name: string
    readonly status: string
    readonly summary: { readonly scenario: string, readonly figures: ReadonlyArray<{ readonly name: string, readonly ours: number | null }> } | null
  }>
}

/** Every one must run: a benchmark skipped (for time or a missing script) fails the test. */
const BENCHMARKS = ['connect-rate', 'uplink-throughput', 'cross-node-latency', 'idle-connections', 'broadcast', 'push-batch']

function runSuite (outDir: string): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve, reject) => {
    let output = ''
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/suite.ts', '--quick', '--only', BENCHMARKS.join(','), '--max-seconds', '400', '--out-dir', outDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', (c: Buffer) => { output += c.toString('utf8') })
    child.stderr.on('data', (c: Buffer) => { output += c.toString('utf8') })
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, output }))
  })
}

/** The suite's own account of each scenario that failed (its status line and the tail of its log), first. */
function failures (output: string): string {
  const at = output.search(/^bench suite: [\w-]+: (failed|timeout) /m)
  return at === -1 ? '(no scenario reported failed or timed out)' : output.slice(at, at + 3000)
}

test('the quick benchmark suite runs every benchmark and writes a report and, for each, a summary with numbers', { timeout: 600_000 }, async (t) => {
  redisUrl() // the services of scripts/services.sh must be up: the suite reuses them from .services/env
  const outDir = await tempDir(t)
  const { code, output } = await runSuite(outDir)
  assert.equal(code, 0, `the suite failed:\n${failures(output)}\n...\n${output.slice(-1500)}`)

  const files = await readdir(outDir)
  const json = files.find((f) => /^report-.*\.json$/.test(f))
  const md = files.find((f) => /^report-.*\.md$/.test(f))
  assert.ok(json !== undefined && md !== undefined, `no report in ${outDir}: ${files.join(', ')}`)
  const report = JSON.parse(await readFile(join(outDir, json), 'utf8')) as Report
  const ran = report.scenarios.filter((s) => s.status !== 'skipped')
  for (const name of BENCHMARKS) {
    assert.ok(ran.some((s) => s.name === name), `${name} did not run: ${JSON.stringify(report.scenarios.find((s) => s.name === name)?.status)}`)
  }
  for (const s of ran) {
    assert.equal(s.status, 'ok', `${s.name}: ${s.status}`)
    assert.ok(s.summary !== null && s.summary.figures.length > 0, `${s.name} wrote no figures`)
    const numbers = s.summary.figures.filter((f) => typeof f.ours === 'number' && Number.isFinite(f.ours))
    assert.ok(numbers.length > 0, `${s.name}: no figure has a number: ${JSON.stringify(s.summary.figures)}`)
  }
  const markdown = await readFile(join(outDir, md), 'utf8')
  for (const s of ran) assert.match(markdown, new RegExp(`\\| ${s.name} \\| ok \\|`))
})
