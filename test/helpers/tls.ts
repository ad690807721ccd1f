import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
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

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/** A throwaway CA and a server certificate it signed, made with the openssl CLI; removed after the test. */
export async function makeCertificates (t: TestContext): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-tls-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const key = EC_KEY
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

export interface ClientCertificate {
  readonly cert: Buffer
  readonly key: Buffer
  readonly certFile: string
}

export interface IssueOptions {
  /** Subject CN; a placeholder when left out. */
  readonly cn?: string
  /** Subject alternative names of type DNS. */
  readonly dns?: readonly string[]
  /** openssl dates, YYYYMMDDHHMMSSZ; default: valid from now for two days. */
  readonly startDate?: string
  readonly endDate?: string
}

export interface ClientCa {
  /** The CA certificate: what PUSHLINE_TLS_CLIENT_CA_FILE holds. */
  readonly caFile: string
  /** Its current CRL; rewritten by revoke(). */
  readonly crlFile: string
  issue (name: string, opts: IssueOptions): Promise<ClientCertificate>
  /** Revokes a certificate issued here and writes a new CRL. */
  revoke (name: string): Promise<void>
}

const CA_CONFIG = `[ca]
default_ca = ca_default
[ca_default]
dir = .
database = ./index.txt
new_certs_dir = ./issued
serial = ./serial
crlnumber = ./crlnumber
certificate = ./ca.pem
private_key = ./ca.key
default_md = sha256
default_days = 2
default_crl_days = 2
policy = policy_any
unique_subject = no
[policy_any]
commonName = optional
`

/** A throwaway client CA run with `openssl ca` (which also revokes and writes CRLs); removed after the test. */
export async function makeClientCa (t: TestContext, name = 'Pushline test client CA'): Promise<ClientCa> {
  const dir = await mkdtemp(join(tmpdir(), 'pushline-client-ca-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'issued'))
  await writeFile(join(dir, 'ca.cnf'), CA_CONFIG)
  await writeFile(join(dir, 'index.txt'), '')
  await writeFile(join(dir, 'serial'), '1000\n')
  await writeFile(join(dir, 'crlnumber'), '1000\n')
  await openssl(dir, 'req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  const gencrl = (): Promise<void> => openssl(dir, 'ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem')
  await gencrl()
  return {
    caFile: join(dir, 'ca.pem'),
    crlFile: join(dir, 'crl.pem'),
    async issue (certName, opts) {
      const ext = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth',
        ...(opts.dns === undefined ? [] : [`subjectAltName=${opts.dns.map((d) => `DNS:${d}`).join(',')}`])]
      await writeFile(join(dir, `${certName}.ext`), `[client]\n${ext.join('\n')}\n`)
      await openssl(dir, 'req', '-new', ...EC_KEY, '-keyout', `${certName}.key`, '-out', `${certName}.csr`, '-subj', `/CN=${opts.cn ?? `not-a-device-${certName}`}`)
      await openssl(dir, 'ca', '-batch', '-config', 'ca.cnf', '-in', `${certName}.csr`, '-out', `${certName}.pem`, '-notext',
        '-extfile', `${certName}.ext`, '-extensions', 'client',
        ...(opts.startDate === undefined ? [] : ['-startdate', opts.startDate]), ...(opts.endDate === undefined ? [] : ['-enddate', opts.endDate]))
      return { cert: await readFile(join(dir, `${certName}.pem`)), key: await readFile(join(dir, `${certName}.key`)), certFile: join(dir, `${certName}.pem`) }
    },
    async revoke (certName) {
      await openssl(dir, 'ca', '-config', 'ca.cnf', '-revoke', `${certName}.pem`)
      await gencrl()
    }
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
