// Reads the TLS certificate, key and optional CA once at start and checks that they make a usable server
// context, so a wrong path or a key that does not match its certificate stops the start with a clear error.
// With a client CA bundle, the listeners ask devices for a certificate (without requiring one) and trust that
// bundle alone for it; the CRL file, if any, is checked with it.

import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext, type TlsOptions } from 'node:tls'
import { PushlineError } from '../shared/errors.ts'

export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
  readonly caFile?: string
  readonly clientCaFile?: string
  readonly clientCrlFile?: string
}

async function readPem (path: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new PushlineError('IOT_ERR_TLS', `cannot read ${setting} (${path}): ${(err as Error).message}`, { setting, path })
  }
}

/** Node takes a CA file with no readable certificate in it without a word (and then trusts nothing): refuse it here. */
function checkCaBundle (pem: Buffer, path: string): void {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new PushlineError('IOT_ERR_TLS', `PUSHLINE_TLS_CLIENT_CA_FILE (${path}) holds no PEM certificate`, { path })
  for (const block of blocks) {
    try {
      const ca = new X509Certificate(block)
      if (!ca.ca) throw new Error(`${ca.subject.replace(/\n/g, ', ')} is not a CA certificate`)
    } catch (err) {
      throw new PushlineError('IOT_ERR_TLS', `PUSHLINE_TLS_CLIENT_CA_FILE (${path}): ${(err as Error).message}`, { path })
    }
  }
}

export async function loadTlsCredentials (files: TlsFiles): Promise<TlsOptions> {
  const cert = await readPem(files.certFile, 'PUSHLINE_TLS_CERT_FILE')
  const key = await readPem(files.keyFile, 'PUSHLINE_TLS_KEY_FILE')
  const ca = files.caFile === undefined ? undefined : await readPem(files.caFile, 'PUSHLINE_TLS_CA_FILE')
  let credentials: TlsOptions = { cert, key, ...(ca !== undefined && { ca }) }
  if (files.clientCaFile !== undefined) {
    const clientCa = await readPem(files.clientCaFile, 'PUSHLINE_TLS_CLIENT_CA_FILE')
    checkCaBundle(clientCa, files.clientCaFile)
    const crl = files.clientCrlFile === undefined ? undefined : await readPem(files.clientCrlFile, 'PUSHLINE_TLS_CLIENT_CRL_FILE')
    // `ca` is what client certificates are verified against, so it holds the client CA bundle alone: the server's
    // intermediates (PUSHLINE_TLS_CA_FILE) move into its chain, or any certificate they signed would let a device in.
    credentials = {
      cert: ca === undefined ? cert : Buffer.concat([cert, Buffer.from('\n'), ca]),
      key,
      ca: clientCa,
      ...(crl !== undefined && { crl }),
      // Asked for, not required: token devices share the listeners. A certificate that fails verification still
      // completes the handshake and is refused at CONNECT with a CONNACK the device can read.
      requestCert: true,
      rejectUnauthorized: false
    }
  }
  try {
    createSecureContext(credentials)
  } catch (err) {
    const crlProblem = /CRL/i.test((err as Error).message)
    throw new PushlineError('IOT_ERR_TLS', crlProblem
      ? `PUSHLINE_TLS_CLIENT_CRL_FILE (${files.clientCrlFile ?? ''}) is not usable: ${(err as Error).message}`
      : `the TLS certificate and key are not usable together: ${(err as Error).message}`, { certFile: files.certFile, keyFile: files.keyFile })
  }
  return credentials
}
