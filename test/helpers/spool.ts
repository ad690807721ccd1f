import { mkdtemp, rm, writeFile } from 'node:fs/promises'
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

/** An uplink as a spool of the JSON-lines format (before the binary format) recorded it. */
export interface LegacyRecord {
  readonly seq: number
  readonly msgId: string
  readonly deviceId: string
  readonly topic: string
  readonly kind: 'telemetry' | 'events'
  readonly qos: 0 | 1 | 2
  readonly nodeId: string
  readonly receivedAt: number
  readonly traceId: string
  readonly payload: Buffer
}

/**
 * Writes a segment file the way the JSON-lines spool did: `seg-<first seq>.jsonl`, one JSON object per line with
 * the payload in base64, and `tail` (a torn line, say) after the last one.
 */
export async function writeLegacySegment (dir: string, records: readonly LegacyRecord[], tail = ''): Promise<string> {
  const first = records[0]
  if (first === undefined) throw new Error('a legacy segment needs a record')
  const path = join(dir, `seg-${String(first.seq).padStart(16, '0')}.jsonl`)
  const lines = records.map((r) => JSON.stringify({ ...r, payload: r.payload.toString('base64') }) + '\n').join('')
  await writeFile(path, lines + tail)
  return path
}
