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

export interface TestChain {
  /** The root a client trusts. */
  readonly root: Buffer
  /** The server certificate alone (signed by the intermediate), its key, and the intermediate CA's certificate. */
  readonly leafFile: string
  readonly keyFile: string
  readonly intermediateFile: string
}

/** A root CA, an intermediate CA it signed, and a server certificate for 127.0.0.1 the intermediate signed. */
export async function makeChain (t: TestContext): Promise<TestChain> {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-chain-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await openssl(dir, 'req', '-x509', ...key, '-keyout', 'root.key', '-out', 'root.pem', '-days', '2', '-subj', '/CN=Pushline test root')
  await writeFile(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n')
  await openssl(dir, 'req', ...key, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Pushline test intermediate')
  await openssl(dir, 'x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.pem', '-days', '2', '-extfile', 'ca.ext')
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  await openssl(dir, 'req', ...key, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1')
  await openssl(dir, 'x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'san.ext')
  return { root: await readFile(join(dir, 'root.pem')), leafFile: join(dir, 'leaf.pem'), keyFile: join(dir, 'leaf.key'), intermediateFile: join(dir, 'int.pem') }
}
