import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { waitUntil } from '../helpers/eventually.ts'

const LISTENERS = fileURLToPath(new URL('../../src/broker/listeners.ts', import.meta.url))

// A process whose event loop is busy accepts nothing; the kernel completes handshakes only while its accept
// queue has room. Node's default backlog (511) made devices past it wait for a SYN retransmit.
test('a listener queues more than Node\'s default 511 connections while its process is busy', { timeout: 90_000 }, async (t) => {
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))
  if (somaxconn < 1024) return t.skip(`net.core.somaxconn is ${somaxconn}`)
  const dir = await mkdtemp(join(tmpdir(), 'pushline-backlog-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const release = join(dir, 'release')
  // The child listens, says its port, then blocks its event loop until the release file exists.
  const script = `
    import { createServer } from 'node:net'
    import { existsSync } from 'node:fs'
    import { listenOn } from ${JSON.stringify(LISTENERS)}
    const server = createServer((s) => s.destroy())
    const port = await listenOn(server, '127.0.0.1', 0, 'TEST_PORT')
    process.stdout.write(port + '\\n', () => {
      while (!existsSync(${JSON.stringify(release)})) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
      server.close()
      process.exit(0)
    })`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => { child.kill('SIGKILL') })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => { resolve(Number(d.toString().trim())) })
    child.once('exit', (code) => { reject(new Error(`child exited ${code}`)) })
  })

  const wanted = 800
  let established = 0
  const sockets: Socket[] = []
  t.after(() => { for (const s of sockets) s.destroy() })
  for (let i = 0; i < wanted; i++) {
    const s = connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    s.once('connect', () => { established++ })
    sockets.push(s)
  }
  // Without the deeper queue about 512 complete and the rest wait for SYN retransmits (1, 3, 7, 15 s ...),
  // which the blocked child never makes room for: this bound is then what fails.
  await waitUntil(`${wanted} connections established while the listener's process is busy`, () => established === wanted, 30_000)
  await writeFile(release, '')
})
