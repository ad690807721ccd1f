import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { settingsTable } from '../../src/config/settings-table.ts'

test('the README configuration table matches the settings the config module reads', { timeout: 120_000 }, async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const block = /<!-- settings-table:start -->\n([\s\S]*?)\n<!-- settings-table:end -->/.exec(readme)?.[1]
  assert.equal(block, settingsTable(), 'regenerate it with: npx tsx scripts/config-table.ts')
})
