// Reads the TLS certificate, key and optional CA once at start and checks that they make a usable server
// context, so a wrong path or a key that does not match its certificate stops the start with a clear error.

import { readFile } from 'node:fs/promises'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import { PushlineError } from '../shared/errors.ts'

export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
  readonly caFile?: string
}

async function readPem (path: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new PushlineError('IOT_ERR_TLS', `cannot read ${setting} (${path}): ${(err as Error).message}`, { setting, path })
  }
}

export async function loadTlsCredentials (files: TlsFiles): Promise<SecureContextOptions> {
  const cert = await readPem(files.certFile, 'PUSHLINE_TLS_CERT_FILE')
  const key = await readPem(files.keyFile, 'PUSHLINE_TLS_KEY_FILE')
  const ca = files.caFile === undefined ? undefined : await readPem(files.caFile, 'PUSHLINE_TLS_CA_FILE')
  const credentials: SecureContextOptions = { cert, key, ...(ca !== undefined && { ca }) }
  try {
    createSecureContext(credentials)
  } catch (err) {
    throw new PushlineError('IOT_ERR_TLS', `the TLS certificate and key are not usable together: ${(err as Error).message}`, { certFile: files.certFile, keyFile: files.keyFile })
  }
  return credentials
}
