import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

export interface TestCertificates {
  readonly dir: string
  /** The CA that signed the server certificate: what a trusting client is given. */
  readonly caFile: string
  readonly ca: Buffer
  /** Server certificate for 127.0.0.1 and localhost, and its key. */
  readonly certFile: string
  readonly keyFile: string
  /** A key that does not belong to the certificate. */
  readonly otherKeyFile: string
}

function openssl (cwd: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err !== null) reject(new Error(`openssl ${args[0] ?? ''} failed: ${stderr}`))
      else resolve()
    })
  })
}

/** A throwaway CA and a server certificate it signed, made with the openssl CLI; removed after the test. */
export async function makeCertificates (t: TestContext): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-tls-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await openssl(dir, 'req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Pushline test CA')
  await openssl(dir, 'req', ...key, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  await openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext')
  await openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'other.key')
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    ca: await readFile(join(dir, 'ca.pem')),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server.key'),
    otherKeyFile: join(dir, 'other.key')
  }
}
