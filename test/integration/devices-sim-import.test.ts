import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY, startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { runNode, tempDir } from '../helpers/process.ts'

// The operator's bulk import (`devices-sim import`), run through the package's bin as an operator runs it, against
// a platform with Redis stores.

async function runImport (t: Parameters<typeof runNode>[0], args: string[]): Promise<{ code: number | null, out: string, err: string }> {
  const p = runNode(t, ['devices-sim/bin/devices-sim.js', 'import', ...args], {})
  const code = await p.exited
  return { code, out: p.stdout(), err: p.stderr() }
}

test('import of a CSV file creates its devices in batches and writes their secrets to a new file of mode 0600', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { clusterPrefix: uniquePrefix() })
  await p.createDevice('csv-taken')
  const dir = await tempDir(t)
  const ids = Array.from({ length: 10_050 }, (_, i) => `csv-${String(i).padStart(5, '0')}`)
  const csv = ['id,groups', 'csv-first,hall yard', ...ids, 'csv-00007', 'bad id!', 'csv-taken', ''].join('\n')
  await writeFile(join(dir, 'ids.csv'), csv)
  const out = join(dir, 'secrets.ndjson')
  const run = await runImport(t, ['--url', p.httpUrl, '--admin-key', ADMIN_KEY, '--file', join(dir, 'ids.csv'), '--out', out, '--groups', 'fleet'])
  assert.equal(run.code, 1, 'some ids failed')
  assert.match(run.out, /10054 read, 10051 created, 3 failed/)
  assert.match(run.err, /csv-00007 SIM_ERR_DUPLICATE_IN_FILE/)
  assert.match(run.err, /bad id! IOT_ERR_VALIDATION/)
  assert.match(run.err, /csv-taken IOT_ERR_DEVICE_EXISTS/)
  assert.equal((await stat(out)).mode & 0o777, 0o600)
  const lines = (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { id: string, secret: string, groups: string[] })
  assert.equal(lines.length, 10_051)
  const first = lines.find((l) => l.id === 'csv-first')
  assert.deepEqual(first?.groups, ['hall', 'yard'])
  assert.deepEqual(lines.find((l) => l.id === 'csv-10049')?.groups, ['fleet'])
  await connectDevice(t, p.mqttUrl, 'csv-first', await p.token('csv-first', first?.secret as string))

  const again = await runImport(t, ['--url', p.httpUrl, '--admin-key', ADMIN_KEY, '--file', join(dir, 'ids.csv'), '--out', out])
  assert.equal(again.code, 1)
  assert.match(again.err, /cannot create .*secrets\.ndjson/, 'an existing secrets file is never overwritten')
  assert.equal((await readFile(out, 'utf8')).trim().split('\n').length, 10_051)
})

test('import of an NDJSON file keeps groups and metadata; a malformed line stops it with a usage error', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const dir = await tempDir(t)
  await writeFile(join(dir, 'ids.ndjson'), [JSON.stringify({ id: 'nd-1', groups: ['g1'], metadata: { site: 'north' } }), JSON.stringify({ id: 'nd-2' }), ''].join('\n'))
  const run = await runImport(t, ['--url', p.httpUrl, '--admin-key', ADMIN_KEY, '--file', join(dir, 'ids.ndjson'), '--out', join(dir, 'out.ndjson')])
  assert.equal(run.code, 0, run.err)
  assert.deepEqual((await p.api('GET', '/v1/admin/devices/nd-1')).body.metadata, { site: 'north' })
  assert.deepEqual((await p.api('GET', '/v1/admin/devices/nd-1')).body.groups, ['g1'])
  assert.equal((await readFile(join(dir, 'out.ndjson'), 'utf8')).trim().split('\n').length, 2)

  await writeFile(join(dir, 'bad.ndjson'), '{"id": "nd-3"}\nnot json\n')
  const bad = await runImport(t, ['--url', p.httpUrl, '--admin-key', ADMIN_KEY, '--file', join(dir, 'bad.ndjson'), '--out', join(dir, 'bad-out.ndjson')])
  assert.equal(bad.code, 2)
  assert.match(bad.err, /line 2: not JSON/)
  const missing = await runImport(t, ['--file', join(dir, 'ids.ndjson'), '--out', join(dir, 'x.ndjson')])
  assert.equal(missing.code, 2)
  assert.match(missing.err, /needs --admin-key/)
})
