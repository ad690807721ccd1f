import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { openFileSpool, type FileSpool, type FileSpoolOptions } from '../../src/uplink/file-spool.ts'

/** A temporary folder removed after the test. */
export async function tempDir (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-spool-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a spool and closes it after the test (closing twice is a no-op). */
export async function openSpool (t: TestContext, opts: FileSpoolOptions): Promise<FileSpool> {
  const spool = await openFileSpool(opts)
  t.after(() => spool.close())
  return spool
}
