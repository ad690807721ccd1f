// `devices-sim import`: an operator's bulk onboarding. Reads device ids (CSV or NDJSON), creates them through
// POST /v1/admin/devices/batch, 10,000 per request, and writes each created device's secret to a new file that
// only its owner may read (mode 0600). The secrets are shown once by the platform: the file is their only copy.

import { createReadStream } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { SimError } from './errors.ts'
import { createHttpApi, MAX_BATCH, type NewDevice } from './http-api.ts'

export const IMPORT_HELP = `usage: devices-sim import --url URL --admin-key KEY --file IDS --out SECRETS [options]

Creates the devices listed in IDS through POST /v1/admin/devices/batch (${MAX_BATCH.toLocaleString('en-US')} per request) and writes
one JSON line {"id","secret","groups"} per created device to SECRETS, a new file of mode 0600 (an existing file
is never overwritten). Failed ids (taken, invalid, repeated in the file) are listed on stderr.

  --url URL          platform HTTP API (default http://127.0.0.1:3000)
  --admin-key KEY    operator key (or DEVICES_SIM_ADMIN_KEY)
  --file IDS         .csv: one device per line, "id" or "id,group1 group2" (a first line "id,..." is a header);
                     .ndjson / .jsonl: one {"id", "groups"?, "metadata"?} per line
  --format F         csv | ndjson (default: from the file name)
  --out SECRETS      where the secrets go (created, mode 0600)
  --groups G1,G2     groups for devices whose line names none
  --help`

export interface ImportSummary {
  readonly read: number
  readonly created: number
  readonly failed: Array<{ id: string, error: string }>
}

interface ImportOptions {
  readonly url: string
  readonly adminKey: string
  readonly file: string
  readonly format: 'csv' | 'ndjson'
  readonly out: string
  readonly groups: readonly string[]
}

function usage (message: string): SimError {
  return new SimError('SIM_ERR_USAGE', `${message}\n\n${IMPORT_HELP}`)
}

export function parseImportArgs (argv: readonly string[], env: { adminKey?: string | undefined }): ImportOptions | 'help' {
  let values
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        url: { type: 'string', default: 'http://127.0.0.1:3000' },
        'admin-key': { type: 'string' },
        file: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        groups: { type: 'string', default: '' },
        help: { type: 'boolean', default: false }
      },
      strict: true
    }).values
  } catch (err) {
    throw usage((err as Error).message)
  }
  if (values.help) return 'help'
  const adminKey = values['admin-key'] ?? env.adminKey
  if (adminKey === undefined) throw usage('import needs --admin-key (or DEVICES_SIM_ADMIN_KEY)')
  if (values.file === undefined) throw usage('import needs --file')
  if (values.out === undefined) throw usage('import needs --out')
  const format = values.format ?? (/\.(ndjson|jsonl)$/i.test(values.file) ? 'ndjson' : /\.csv$/i.test(values.file) ? 'csv' : undefined)
  if (format !== 'csv' && format !== 'ndjson') throw usage('give --format csv or ndjson (the file name does not say)')
  return { url: values.url.replace(/\/+$/, ''), adminKey, file: values.file, format, out: values.out, groups: values.groups.split(',').map((g) => g.trim()).filter((g) => g !== '') }
}

/** One line of the input as a device; undefined for blank lines and a CSV header. Throws on a malformed line. */
export function parseLine (line: string, format: 'csv' | 'ndjson', lineNo: number, defaultGroups: readonly string[]): NewDevice | undefined {
  const text = line.trim()
  if (text === '') return undefined
  if (format === 'ndjson') {
    let v: unknown
    try {
      v = JSON.parse(text)
    } catch (err) {
      throw new SimError('SIM_ERR_USAGE', `line ${lineNo}: not JSON (${(err as Error).message})`)
    }
    const d = v as { id?: unknown, groups?: unknown, metadata?: unknown }
    if (typeof v !== 'object' || v === null || typeof d.id !== 'string') throw new SimError('SIM_ERR_USAGE', `line ${lineNo}: expected {"id": "...", "groups"?: [...], "metadata"?: {...}}`)
    return { id: d.id, groups: Array.isArray(d.groups) ? d.groups as string[] : [...defaultGroups], ...(typeof d.metadata === 'object' && d.metadata !== null && { metadata: d.metadata as Record<string, unknown> }) }
  }
  const [id = '', groups = ''] = text.split(',').map((f) => f.trim().replace(/^"(.*)"$/, '$1'))
  if (lineNo === 1 && id.toLowerCase() === 'id') return undefined
  const named = groups.split(/\s+/).filter((g) => g !== '')
  return { id, groups: named.length > 0 ? named : [...defaultGroups] }
}

export async function runImport (opts: ImportOptions, log: (line: string) => void): Promise<ImportSummary> {
  const api = createHttpApi(opts.url, { adminKey: opts.adminKey })
  let out: FileHandle
  try {
    // 'wx': never overwrite (it may hold the only copy of earlier secrets); 0600: secrets are for the owner only.
    out = await open(opts.out, 'wx', 0o600)
  } catch (err) {
    throw new SimError('SIM_ERR_CREDENTIALS', `cannot create ${opts.out}: ${(err as Error).message}`)
  }
  const failed: Array<{ id: string, error: string }> = []
  const seen = new Set<string>()
  let read = 0
  let created = 0
  let batch: NewDevice[] = []
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return
    const result = await api.createDevicesAsAdmin(batch)
    // Written before the next request: whatever happens later, the secrets of created devices are on disk.
    await out.appendFile(result.created.map((c) => JSON.stringify(c) + '\n').join(''))
    await out.sync()
    created += result.created.length
    failed.push(...result.failed)
    log(`batch of ${batch.length}: ${result.created.length} created, ${result.failed.length} failed (${created} created so far)`)
    batch = []
  }
  try {
    const lines = createInterface({ input: createReadStream(opts.file, 'utf8'), crlfDelay: Infinity })
    let lineNo = 0
    for await (const line of lines) {
      const device = parseLine(line, opts.format, ++lineNo, opts.groups)
      if (device === undefined) continue
      read++
      // The route refuses a whole batch that repeats an id; a repeat across batches would fail as taken.
      if (seen.has(device.id)) {
        failed.push({ id: device.id, error: 'SIM_ERR_DUPLICATE_IN_FILE' })
        continue
      }
      seen.add(device.id)
      batch.push(device)
      if (batch.length === MAX_BATCH) await flush()
    }
    await flush()
  } finally {
    await out.close()
  }
  return { read, created, failed }
}
