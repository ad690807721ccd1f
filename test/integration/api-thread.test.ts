import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { test, type TestContext } from 'node:test'
import { startChildPlatform, type ChildPlatform } from '../helpers/child-platform.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY } from '../helpers/platform.ts'
import { redisUrl, uniquePrefix } from '../helpers/services.ts'

// Role all with Redis serves its HTTP API from a thread of its own (src/api-thread/), at a lower CPU priority.
// These tests spawn the platform as `npm start` runs it (a real process, real Redis, real TCP); the in-process
// tests (startTestPlatform) run role all in one thread.

const admin = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }

async function startThreaded (t: TestContext, env: Record<string, string> = {}): Promise<ChildPlatform> {
  return await startChildPlatform(t, { PUSHLINE_REDIS_URL: redisUrl(), PUSHLINE_REDIS_PREFIX: uniquePrefix(), PUSHLINE_LOG_LEVEL: 'info', ...env })
}

/** The nice value of each thread of a process (field 19 of /proc/PID/task/TID/stat), by thread id. */
async function threadNiceValues (pid: number): Promise<Map<number, number>> {
  const nice = new Map<number, number>()
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined)
    if (stat === undefined) continue
    // The fields after the command name, which may hold spaces and ends at the last ')': state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    nice.set(Number(tid), Number(fields[19 - 3]))
  }
  return nice
}

/** Checks the text exposition format line by line; returns each family's type, and throws on a family listed twice. */
function parseExposition (text: string): Map<string, string> {
  const types = new Map<string, string>()
  let family: string | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      const name = type[1] as string
      assert.ok(!types.has(name), `family ${name} listed twice`)
      types.set(name, type[2] as string)
      family = name
      continue
    }
    if (line.startsWith('# HELP ')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    assert.ok(sample !== null, `not a sample line: ${line}`)
    assert.ok(!Number.isNaN(Number((sample[3] as string).replace(/^\+Inf$/, 'Infinity'))) || sample[3] === 'NaN', `bad value: ${line}`)
    const name = sample[1] as string
    const inFamily = family !== undefined && (name === family || (name.startsWith(family) && /^(_bucket|_sum|_count)$/.test(name.slice(family.length))))
    assert.ok(inFamily, `sample ${name} outside its family (under ${family})`)
  }
  return types
}

function sampleValue (text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
  return m === null ? undefined : Number(m[1])
}

test('role all with Redis: the API thread serves the registry, admin push, readiness and metrics of the whole process; delete cuts the session off; SIGTERM closes both threads', { timeout: 180_000 }, async (t) => {
  const p = await startThreaded(t, { PUSHLINE_API_THREAD_NICE: '7' })
  assert.match(p.stdout(), /MQTT over TCP\s+mqtt:\/\/127\.0\.0\.1:\d+/)
  assert.match(p.stdout(), /HTTP API\s+http:\/\/127\.0\.0\.1:\d+/)

  // One thread of the process runs the setting's increment above the main thread (the broker's), which keeps the
  // nice value the process was started with.
  const pid = p.child.pid as number
  const nice = await threadNiceValues(pid)
  const base = nice.get(pid) as number
  const lowered = Math.min(19, base + 7)
  assert.equal([...nice.values()].filter((n) => n === lowered).length, 1, `one thread at nice ${lowered}, the process at ${base}: ${JSON.stringify([...nice])}`)

  // Registry (API thread), MQTT connect with the token and a QoS 1 uplink (broker thread).
  const id = `at-${uniquePrefix().slice(2, 10)}`
  const token = await p.provision(id)
  const device = await connectDevice(t, p.mqttUrl, id, token)
  await device.subscribeAsync(`devices/${id}/down`, { qos: 1 })
  // MQTT.js settles a QoS 1 publish on its PUBACK.
  await bounded('PUBACK', device.publishAsync(`devices/${id}/telemetry`, 'hello', { qos: 1 }))

  // An admin push made by the API thread reaches the device through the broker thread.
  const downlink = new Promise<[string, Buffer]>((resolve) => device.once('message', (topic, payload) => { resolve([topic, payload]) }))
  const pushed = await fetch(`${p.httpUrl}/v1/admin/push`, { method: 'POST', headers: admin, body: JSON.stringify({ deviceId: id, data: { cmd: 'ping' }, qos: 1, ttlSeconds: 60 }) })
  assert.equal(pushed.status, 202, await pushed.text())
  const [topic, payload] = await bounded('the pushed downlink', downlink)
  assert.equal(topic, `devices/${id}/down`)
  assert.deepEqual((JSON.parse(payload.toString()) as { data: unknown }).data, { cmd: 'ping' })

  // /readyz reports the broker thread's checks (cluster membership, spool) with the API thread's.
  const ready = await fetch(`${p.httpUrl}/readyz`)
  const report = await ready.json() as { ready: boolean, checks: Record<string, string> }
  assert.equal(ready.status, 200, JSON.stringify(report))
  assert.equal(report.checks.cluster, 'ok')
  assert.equal(report.checks.spool, 'ok')
  assert.equal(report.checks.redis, 'ok')

  // /metrics: one exposition with both threads' samples, every family once.
  const text = await (await fetch(`${p.httpUrl}/metrics`)).text()
  const types = parseExposition(text)
  assert.equal(types.get('pushline_connections'), 'gauge')
  assert.equal(sampleValue(text, 'pushline_connections'), 1, 'the broker thread\'s connection gauge')
  assert.ok((sampleValue(text, 'pushline_uplinks_total') ?? 0) >= 1, 'the broker thread\'s uplink counter')
  assert.equal(sampleValue(text, 'pushline_receipts_total\\{[^}]*state="queued"[^}]*\\}'), 1, 'the API thread\'s receipt counter')
  assert.ok(types.has('pushline_token_requests_in_flight'), 'the API thread\'s token gate')
  assert.ok(types.has('process_cpu_seconds_total'), 'process metrics, once')

  // Deleting the device (API thread) closes its connection (broker thread).
  const closed = new Promise<void>((resolve) => device.once('close', () => { resolve() }))
  const deleted = await fetch(`${p.httpUrl}/v1/admin/devices/${id}`, { method: 'DELETE', headers: { authorization: admin.authorization } })
  assert.equal(deleted.status, 204)
  await bounded('the deleted device\'s connection to close', closed)

  p.child.kill('SIGTERM')
  assert.equal(await bounded('exit', p.exited), 0, p.stderr())
  const out = p.stdout()
  const apiClosed = out.indexOf('"event":"api_thread_closed"')
  assert.ok(apiClosed >= 0, 'the API thread closed its parts')
  assert.ok(apiClosed < out.indexOf('"event":"stopped"'), 'before the process stopped')
  assert.doesNotMatch(out, /close_failed|stop_timed_out/)
})

test('PUSHLINE_API_THREAD=false: role all serves the API from its one thread', { timeout: 120_000 }, async (t) => {
  const p = await startThreaded(t, { PUSHLINE_API_THREAD: 'false' })
  const pid = p.child.pid as number
  await waitUntil('the process to report its threads', async () => (await threadNiceValues(pid)).size > 0)
  const nice = await threadNiceValues(pid)
  assert.deepEqual([...new Set(nice.values())], [nice.get(pid)], 'no thread runs at a lower priority than the process')
  const token = await p.provision(`one-${uniquePrefix().slice(2, 10)}`)
  assert.ok(token.length > 0)
})
