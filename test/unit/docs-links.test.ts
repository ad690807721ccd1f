import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'

const ROOT = new URL('../../', import.meta.url).pathname

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function anchor (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

async function headings (file: string): Promise<Set<string>> {
  const text = await readFile(file, 'utf8')
  return new Set([...text.matchAll(/^#+\s+(.*)$/gm)].map((m) => anchor(m[1] as string)))
}

async function files (dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name)
    if (entry.isFile() && keep(entry.name) && !path.includes('/node_modules/') && !path.includes('/dist/')) out.push(path)
  }
  return out
}

test('every relative link in docs/ and bench/*.md points at a file of the repository, and at a heading of it', { timeout: 10_000 }, async () => {
  const pages = [...await files('docs', (n) => n.endsWith('.md')), ...await files('bench', (n) => n.endsWith('.md'))]
  assert.ok(pages.length > 10)
  const broken: string[] = []
  for (const page of pages) {
    for (const [, link] of (await readFile(page, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (link === undefined || /^[a-z]+:/.test(link)) continue
      const [path = '', hash] = link.split('#')
      const target = path === '' ? page : join(dirname(page), path)
      if (!existsSync(target)) broken.push(`${relative(ROOT, page)}: ${link}`)
      else if (hash !== undefined && target.endsWith('.md') && !(await headings(target)).has(hash)) broken.push(`${relative(ROOT, page)}: ${link} (no such heading)`)
    }
  }
  assert.deepEqual(broken, [])
})

test('code, tests, benchmarks and the compose file cite no document outside the repository', { timeout: 10_000 }, async () => {
  const code = [
    ...(await Promise.all(['src', 'test', 'bench', 'devices-sim', 'scripts'].map((d) => files(d, (n) => /\.(ts|js|sh|json|yaml|yml)$/.test(n))))).flat(),
    join(ROOT, 'docker-compose.yml')
  ]
  const outside = /\bDESIGN\.md\b|\bresearch\/[\w-]+\.md\b/
  const citing: string[] = []
  for (const file of code) {
    if (file === new URL(import.meta.url).pathname) continue
    const text = await readFile(file, 'utf8')
    if (outside.test(text)) citing.push(relative(ROOT, file))
  }
  assert.deepEqual(citing, [])
})
