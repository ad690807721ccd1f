// The credential cache: device secrets are shown once by the platform, so the simulator keeps them in a file
// (one per prefix by default) to reuse devices in later runs (--provision reuse, or admin runs that find them).

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { SimError } from './errors.ts'
import type { IssuedToken } from './http-api.ts'
import type { DeviceCredentials } from './protocol.ts'

export interface CredentialFile {
  /** The API the devices belong to; a cache made against another platform is not used. */
  readonly url: string
  readonly devices: Record<string, { readonly secret: string, readonly groups: readonly string[], readonly token?: IssuedToken }>
}

export async function loadCredentials (path: string, url: string): Promise<Map<string, DeviceCredentials>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    return new Map()
  }
  let file: CredentialFile
  try {
    file = JSON.parse(text) as CredentialFile
  } catch (err) {
    throw new SimError('SIM_ERR_CREDENTIALS', `${path}: not valid JSON (${(err as Error).message}); delete it to provision again`)
  }
  if (file.url !== url || typeof file.devices !== 'object' || file.devices === null) return new Map()
  return new Map(Object.entries(file.devices).map(([id, d]) => [id, { id, groups: d.groups, secret: d.secret, ...(d.token !== undefined && { token: d.token }) }]))
}

/** Writes the cache atomically (temp file, then rename), readable by the owner only. */
export async function saveCredentials (path: string, url: string, all: ReadonlyMap<string, DeviceCredentials>): Promise<void> {
  const devices: CredentialFile['devices'] = {}
  for (const [id, d] of all) if (d.secret !== undefined) devices[id] = { secret: d.secret, groups: d.groups, ...(d.token !== undefined && { token: d.token }) }
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify({ url, devices } satisfies CredentialFile), { mode: 0o600 })
  await rename(tmp, path)
}
