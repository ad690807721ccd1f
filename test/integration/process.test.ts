import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { connect as netConnect, createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { promisify } from 'node:util'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { printedPort as port, ROOT, runNode as run, tempDir } from '../helpers/process.ts'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'

test('the compiled platform starts with the defaults, prints its listeners and a generated admin key, serves the slice and stops on SIGTERM with exit 0 and the spool flushed', { timeout: 120_000 }, async (t) => {
  await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: ROOT })
  const dataDir = await tempDir(t)
  const p = run(t, ['dist/src/main.js'], { PUSHLINE_MQTT_PORT: '0', PUSHLINE_WS_PORT: '0', PUSHLINE_HTTP_PORT: '0', PUSHLINE_DATA_DIR: dataDir })
  await waitUntil('start-up lines', () => p.stdout().includes('admin key'))
  const text = p.stdout()
  assert.match(text, /embedded mode, role all/)
  const key = /admin key[^:]*: (\S+)/.exec(text)?.[1] as string
  const http = `http://127.0.0.1:${port(text, 'HTTP API')}`
  const mqttPort = port(text, 'MQTT over TCP')
  assert.ok(mqttPort > 0 && port(text, 'MQTT over WebSocket') > 0)

  const created = await (await fetch(`${http}/v1/admin/devices`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'proc-dev' }) })).json() as { secret: string }
  const issued = await (await fetch(`${http}/v1/devices/proc-dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret: created.secret }) })).json() as { token: string }
  const client = await connectDevice(t, `mqtt://127.0.0.1:${mqttPort}`, 'proc-dev', issued.token)
  await client.publishAsync('devices/proc-dev/telemetry', 'before stop', { qos: 1 })
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))

  p.child.kill('SIGTERM')
  // Exit code 0: the graceful stop finished; one cut short by PUSHLINE_SHUTDOWN_GRACE_MS exits with 1.
  assert.equal(await bounded('the process to exit after SIGTERM', p.exited), 0)
  await bounded('the device\'s connection to close', closed)
  const records = []
  for await (const r of readSpool(join(dataDir, 'spool'))) records.push(r)
  assert.equal(records.length, 1)
  assert.equal((records[0]?.payload ?? Buffer.alloc(0)).toString(), 'before stop')
})

test('a port already in use stops the start with an error naming the port and the setting that changes it', { timeout: 120_000 }, async (t) => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve))
  t.after(() => blocker.close())
  const busy = (blocker.address() as AddressInfo).port
  const p = run(t, ['--import', 'tsx', 'src/main.ts'], { PUSHLINE_MQTT_PORT: String(busy), PUSHLINE_WS_PORT: '0', PUSHLINE_HTTP_PORT: '0', PUSHLINE_DATA_DIR: await tempDir(t), PUSHLINE_LOG_LEVEL: 'silent' })
  assert.equal(await bounded('the process to exit on a port in use', p.exited), 1)
  assert.match(p.stderr(), new RegExp(`port ${busy} .*already in use.*PUSHLINE_MQTT_PORT`))
})

test('a bad configuration is refused with one message listing every problem and exit code 2', { timeout: 120_000 }, async (t) => {
  const p = run(t, ['--import', 'tsx', 'src/main.ts'], { PUSHLINE_MQTT_PORT: 'x', PUSHLINE_ROLE: 'broker', PUSHLINE_ADMIN_KEYS: 'short', PUSHLINE_ALLOW_ANONYMOUS: 'maybe' })
  assert.equal(await bounded('the process to exit on a bad configuration', p.exited), 2)
  const err = p.stderr()
  for (const name of ['PUSHLINE_MQTT_PORT', 'PUSHLINE_ADMIN_KEYS', 'PUSHLINE_ALLOW_ANONYMOUS']) assert.match(err, new RegExp(name))
})

test('anonymous mode with Redis does not start without PUSHLINE_ALLOW_ANONYMOUS_SHARED: exit 2 and a message naming it', { timeout: 60_000 }, async (t) => {
  const p = run(t, ['--import', 'tsx', 'src/main.ts'], { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_REDIS_URL: 'redis://127.0.0.1:1', PUSHLINE_MQTT_PORT: '0', PUSHLINE_WS_PORT: '0', PUSHLINE_HTTP_PORT: '0', PUSHLINE_DATA_DIR: await tempDir(t) })
  assert.equal(await bounded('the process to refuse anonymous mode with Redis', p.exited), 2)
  assert.match(p.stderr(), /PUSHLINE_ALLOW_ANONYMOUS_SHARED=true/)
  assert.doesNotMatch(p.stdout(), /HTTP API/)
})

test('anonymous mode logs a warning at start', { timeout: 120_000 }, async (t) => {
  const p = run(t, ['--import', 'tsx', 'src/main.ts'], { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_MQTT_PORT: '0', PUSHLINE_WS_PORT: '0', PUSHLINE_HTTP_PORT: '0', PUSHLINE_DATA_DIR: await tempDir(t) })
  await waitUntil('warning and start-up lines', () => p.stdout().includes('PUSHLINE_ALLOW_ANONYMOUS is on') && p.stdout().includes('HTTP API'))
  p.child.kill('SIGINT')
  assert.equal(await bounded('the process to exit after SIGINT', p.exited), 0)
})

test('a part that does not close in time does not hold the process past PUSHLINE_SHUTDOWN_GRACE_MS: exit 1 and the stop reported cut short, naming the part', { timeout: 120_000 }, async (t) => {
  const p = run(t, ['--import', 'tsx', 'src/main.ts'], { PUSHLINE_MQTT_PORT: '0', PUSHLINE_WS_PORT: '0', PUSHLINE_HTTP_PORT: '0', PUSHLINE_HOST: '127.0.0.1', PUSHLINE_DATA_DIR: await tempDir(t), PUSHLINE_LOG_LEVEL: 'info', PUSHLINE_SHUTDOWN_GRACE_MS: '500' })
  await waitUntil('start-up lines', () => p.stdout().includes('HTTP API'))
  // A request whose body never comes: the HTTP server's close waits for it, longer than the grace period (each
  // part's own bound in src/main.ts is several seconds).
  const stuck = netConnect(port(p.stdout(), 'HTTP API'), '127.0.0.1')
  t.after(() => { stuck.destroy() })
  await bounded('the stuck HTTP connection to open', new Promise<void>((resolve, reject) => { stuck.once('connect', resolve); stuck.once('error', reject) }))
  stuck.write('POST /v1/devices/x/token HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"sec')
  await waitUntil('the HTTP server to see the request', () => p.stdout().includes('incoming request'))

  p.child.kill('SIGTERM')
  assert.equal(await bounded('the process to exit after SIGTERM', p.exited), 1, 'a stop cut short by the grace period exits with 1')
  const lines = p.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string, part?: string, graceMs?: number })
  const events = lines.map((l) => l.event)
  const timedOut = lines.find((l) => l.event === 'stop_timed_out')
  assert.deepEqual({ part: timedOut?.part, graceMs: timedOut?.graceMs }, { part: 'http', graceMs: 500 }, 'the stop names the part that held it')
  assert.ok(events.includes('stopping'), 'the stop began')
  // The exit is the marker: had the process waited for the stuck part, its own bound would have logged close_failed
  // and the remaining parts would have closed ("stopped") before it.
  assert.ok(!events.includes('close_failed') && !events.includes('stopped'), `the process did not wait for the stuck part: ${events.join(', ')}`)
})

/** `npm start` as the README says, in its own process group; whatever is left of the group is killed after the test. */
async function npmStart (t: TestContext): Promise<{ child: ChildProcess, stdout: () => string, ports: number[], exited: Promise<void> }> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    PUSHLINE_HOST: '127.0.0.1',
    PUSHLINE_MQTT_PORT: '0',
    PUSHLINE_WS_PORT: '0',
    PUSHLINE_HTTP_PORT: '0',
    PUSHLINE_DATA_DIR: await tempDir(t),
  }
  const child = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const pgid = child.pid as number
  t.after(() => { try { process.kill(-pgid, 'SIGKILL') } catch {} })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.resume()
  // 'close': npm has exited and the pipe is closed by every process holding it, so the platform (which inherits
  // npm's stdout) has exited too and everything it logged is read. npm's own exit can come before the platform's.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  await waitUntil('start-up lines', () => out.includes('HTTP API') || child.exitCode !== null, 150_000)
  assert.ok(out.includes('HTTP API'), `npm start did not start the platform: ${out}`)
  const ports = ['MQTT over TCP', 'MQTT over WebSocket', 'HTTP API'].map((label) => port(out, label))
  assert.ok(ports.every((p) => p > 0))
  return { child, stdout: () => out, ports, exited }
}

const portFree = (p: number): Promise<boolean> => new Promise((resolve) => {
  const socket = netConnect(p, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(false) })
  socket.once('error', () => { resolve(true) })
})

test('`npm start`, then SIGTERM to npm alone (`npm start &` and `kill %1` in a script): the platform stops and frees its ports', { timeout: 240_000 }, async (t) => {
  const started = await npmStart(t)
  process.kill(started.child.pid as number, 'SIGTERM')
  await bounded('npm start and the platform to exit', started.exited)
  assert.ok(await eventually(async () => (await Promise.all(started.ports.map(portFree))).every(Boolean), 30_000), `ports ${started.ports.join(', ')} still held`)
  assert.match(started.stdout(), /"event":"stopped"/, 'the platform stopped gracefully')
})

test('`npm start`, then SIGINT to its whole process group (Ctrl-C in a terminal): the platform stops gracefully, once', { timeout: 240_000 }, async (t) => {
  const started = await npmStart(t)
  process.kill(-(started.child.pid as number), 'SIGINT')
  await bounded('npm start and the platform to exit', started.exited)
  assert.ok(await eventually(async () => (await Promise.all(started.ports.map(portFree))).every(Boolean), 30_000), `ports ${started.ports.join(', ')} still held`)
  assert.match(started.stdout(), /"event":"stopped"/, 'the platform stopped gracefully')
  assert.doesNotMatch(started.stdout(), /stop_forced/)
})
