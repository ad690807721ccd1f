// A forked load generator for HTTP routes: sends the requests it is given over `concurrency` keep-alive
// connections (one request in flight on each), measures each, and reports. Runs in its own process so that its
// CPU is not the measured process's.

import { Agent, request } from 'node:http'
import type { HttpLoadJob, HttpLoadResult, HttpRequestSpec } from './http-load-protocol.ts'

function send (agent: Agent, base: URL, spec: HttpRequestSpec): Promise<{ status: number, body: string }> {
  const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body)
  return new Promise((resolve, reject) => {
    const req = request({
      agent,
      host: base.hostname,
      port: base.port,
      method: spec.method,
      path: spec.path,
      headers: { ...spec.headers, ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) }
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.setTimeout(30_000, () => req.destroy(new Error('timed out after 30 s')))
    req.on('error', reject)
    req.end(payload)
  })
}

async function run (job: HttpLoadJob): Promise<HttpLoadResult> {
  const base = new URL(job.baseUrl)
  const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency })
  const latenciesMs: number[] = []
  const statuses: Record<string, number> = {}
  const errorSamples: string[] = []
  const bodies: string[] = []
  let errors = 0
  let next = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: job.concurrency }, async () => {
    while (next < job.requests.length) {
      const spec = job.requests[next++] as HttpRequestSpec
      const s = performance.now()
      try {
        const res = await send(agent, base, spec)
        statuses[res.status] = (statuses[res.status] ?? 0) + 1
        if (res.status >= 200 && res.status < 300) {
          latenciesMs.push(performance.now() - s)
          bodies.push(res.body)
        } else if (errorSamples.length < 5) errorSamples.push(`${res.status} ${res.body.slice(0, 120)}`)
      } catch (err) {
        errors++
        if (errorSamples.length < 5) errorSamples.push((err as Error).message)
      }
    }
  }))
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  agent.destroy()
  return { type: 'result', wallMs, latenciesMs, statuses, errors, errorSamples, bodies, cpuSeconds: (cpu.user + cpu.system) / 1e6 }
}

process.once('message', (job: HttpLoadJob) => {
  run(job).then((result) => { process.send?.(result, () => process.exit(0)) }, (err: Error) => {
    process.stderr.write(`http-load-worker: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
})
