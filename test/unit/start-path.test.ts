import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'

// Both ways the platform is started give the node the larger young generation of docs/operations.md ("Node heap").

const SEMI_SPACE = '--max-semi-space-size=32'

test('npm start runs the node with the larger young generation', { timeout: 10_000 }, async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
  assert.match(pkg.scripts.start ?? '', new RegExp(`^exec node ${SEMI_SPACE} dist/src/main\\.js$`))
})

test('the container image runs the node with the larger young generation', { timeout: 10_000 }, async () => {
  const dockerfile = await readFile(new URL('../../Dockerfile', import.meta.url), 'utf8')
  const cmd = dockerfile.split('\n').filter((l) => l.startsWith('CMD '))
  assert.deepEqual(cmd, [`CMD ["node", "${SEMI_SPACE}", "dist/src/main.js"]`])
})
