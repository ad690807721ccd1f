import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { settingsTable } from '../../src/config/settings-table.ts'

test('the settings table of docs/configuration.md matches the settings the config module reads', { timeout: 10_000 }, async () => {
  const page = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
  const block = /<!-- settings-table:start -->\n([\s\S]*?)\n<!-- settings-table:end -->/.exec(page)?.[1]
  assert.equal(block, settingsTable(), 'regenerate it with: npx tsx scripts/config-table.ts --write')
})
