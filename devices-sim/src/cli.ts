// devices-sim command line: options and scenario in, progress on the terminal, a table and a JSON report
// out; the exit code says whether the configured thresholds held (0), were exceeded (1) or the options were
// wrong (2).

import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { runSimulation } from './coordinator.ts'
import { SimError } from './errors.ts'
import { IMPORT_HELP, parseImportArgs, runImport } from './import.ts'
import { helpText, parseArgs, resolveOptions } from './options.ts'
import { formatReport } from './report.ts'
import { loadScenario } from './scenario.ts'

async function importIds (argv: readonly string[]): Promise<number> {
  const opts = parseImportArgs(argv, { adminKey: process.env.DEVICES_SIM_ADMIN_KEY })
  if (opts === 'help') {
    process.stdout.write(IMPORT_HELP + '\n')
    return 0
  }
  const summary = await runImport(opts, (line) => { process.stdout.write(line + '\n') })
  for (const f of summary.failed) process.stderr.write(`failed: ${f.id} ${f.error}\n`)
  process.stdout.write(`import: ${summary.read} read, ${summary.created} created, ${summary.failed.length} failed; secrets in ${opts.out} (mode 0600)\n`)
  return summary.failed.length === 0 ? 0 : 1
}

async function main (argv: readonly string[]): Promise<number> {
  if (argv[0] === 'import') return await importIds(argv.slice(1))
  const args = parseArgs(argv)
  if (args.help) {
    process.stdout.write(helpText() + '\n')
    return 0
  }
  const scenario = args.given.scenario === undefined ? undefined : await loadScenario(args.given.scenario)
  const options = resolveOptions(scenario?.options ?? {}, args.given, {
    adminKey: process.env.DEVICES_SIM_ADMIN_KEY,
    provisioningKey: process.env.DEVICES_SIM_PROVISIONING_KEY
  })
  const live = process.stdout.isTTY === true
  const run = { ...options, progress: options.progress > 0 ? options.progress : live ? 1000 : 5000 }
  const log = (line: string): void => { process.stdout.write(`${live ? '\r\x1b[K' : ''}${line}\n`) }
  log(`devices-sim: ${run.devices} devices against ${run.url}, ${run.workers} worker(s), engine ${run.engine}${scenario === undefined ? '' : `, scenario ${scenario.name}`}`)
  const report = await runSimulation(run, scenario, {
    log,
    progress: (line) => { process.stdout.write(live ? `\r\x1b[K${line}` : `${line}\n`) }
  })
  if (live) process.stdout.write('\r\x1b[K')
  process.stdout.write(formatReport(report) + '\n')
  if (run.report !== undefined) {
    await mkdir(dirname(run.report), { recursive: true })
    await writeFile(run.report, JSON.stringify(report, null, 2) + '\n')
    log(`report: ${run.report}`)
  }
  return report.ok ? 0 : 1
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  if (err instanceof SimError) {
    process.stderr.write(`devices-sim: ${err.message}\n`)
    process.exitCode = err.code === 'SIM_ERR_USAGE' || err.code === 'SIM_ERR_SCENARIO' ? 2 : 1
    return
  }
  process.stderr.write(`devices-sim: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
