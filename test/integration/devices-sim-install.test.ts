// devices-sim from an install without the dev dependencies: the compiled simulator (npm run build:sim) and the
// bin, beside only the production dependencies, play a small fleet against a platform over real TCP. tsx and the
// TypeScript sources are absent there, so this fails if the bin or its workers still need them, or if the
// simulator imports a package that is only a dev dependency.

import assert from 'node:assert/strict'
import { execFile, type ExecFileException } from 'node:child_process'
import { cp, mkdir, readFile, symlink } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import type { Report } from '../../devices-sim/src/report.ts'
import { ADMIN_KEY, startTestPlatform } from '../helpers/platform.ts'
import { ROOT, tempDir } from '../helpers/process.ts'

const run = promisify(execFile)

/** The top-level packages of node_modules that a production install has (`npm ls --omit=dev`). */
async function productionPackages (): Promise<string[]> {
  const { stdout } = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 })
  const top = new Set<string>()
  for (const line of stdout.split('\n')) {
    const rel = relative(join(ROOT, 'node_modules'), line.trim())
    if (line.trim() === '' || rel.startsWith('..')) continue
    const parts = rel.split('/')
    top.add(parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1]}` : parts[0] as string)
  }
  return [...top]
}

interface Result { code: number, stdout: string, stderr: string }

async function sim (cwd: string, args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(cwd, 'devices-sim/bin/devices-sim.js'), ...args], { cwd, timeout: 90_000, env: { PATH: process.env.PATH ?? '' } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as ExecFileException & { stdout: string, stderr: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout, stderr: e.stderr }
  }
}

test('the devices-sim bin runs from an install without dev dependencies (compiled simulator, production packages only)', { timeout: 180_000 }, async (t) => {
  await run('npm', ['run', '--silent', 'build:sim'], { cwd: ROOT })
  const dir = await tempDir(t)
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'))
  await cp(join(ROOT, 'devices-sim/bin'), join(dir, 'devices-sim/bin'), { recursive: true })
  await cp(join(ROOT, 'devices-sim/dist'), join(dir, 'devices-sim/dist'), { recursive: true })
  const packages = await productionPackages()
  assert.ok(!packages.includes('tsx') && !packages.includes('typescript'), 'tsx and typescript are dev dependencies')
  for (const name of packages) {
    await mkdir(dirname(join(dir, 'node_modules', name)), { recursive: true })
    await symlink(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name))
  }

  const help = await sim(dir, ['--help'])
  assert.equal(help.code, 0, help.stderr)
  assert.match(help.stdout, /devices-sim: plays a fleet of devices/)
  const bad = await sim(dir, ['--devices', '0'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /--devices: expected an integer from 1/)

  const p = await startTestPlatform(t)
  const reportPath = join(dir, 'report.json')
  const fleet = await sim(dir, ['--url', p.httpUrl, '--admin-key', ADMIN_KEY, '--prefix', 'installed', '--devices', '4', '--workers', '2',
    '--telemetry-rate', '5', '--duration', '2s', '--progress', '10s', '--report', reportPath, '--min-connected', '1', '--max-lost-uplinks', '0'])
  assert.equal(fleet.code, 0, `${fleet.stdout}\n${fleet.stderr}`)
  const report = JSON.parse(await readFile(reportPath, 'utf8')) as Report
  assert.equal(report.devices.connectedAtEnd, 4)
  assert.ok(report.uplinks.acked > 0, 'uplinks were acknowledged')
  assert.equal(report.latencyMs.uplink.count, report.uplinks.acked)
  assert.ok(report.latencyMs.uplink.p99 >= report.latencyMs.uplink.p50)
})
