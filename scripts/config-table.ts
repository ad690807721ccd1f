// Prints the settings table of docs/configuration.md: `npx tsx scripts/config-table.ts`;
// with `--write` it replaces the table in that page instead (test/unit/readme.test.ts checks that they match).
import { readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { settingsTable } from '../src/config/settings-table.ts'

const page = new URL('../docs/configuration.md', import.meta.url)
const start = '<!-- settings-table:start -->'
const end = '<!-- settings-table:end -->'

const { values } = parseArgs({ options: { write: { type: 'boolean', default: false } } })
if (values.write) {
  const text = await readFile(page, 'utf8')
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from < 0 || to < from) throw new Error(`docs/configuration.md has no ${start} … ${end} block`)
  await writeFile(page, `${text.slice(0, from + start.length)}\n${settingsTable()}\n${text.slice(to)}`)
} else {
  process.stdout.write(settingsTable() + '\n')
}
