// A forked PUBACK probe: one MQTT.js device publishing QoS 1 open loop at a fixed rate and timing each PUBACK.
// A process of its own, so the parent can give it a CPU priority of its own (a device does not share its CPU with
// the load it is measured beside) and its timer callbacks never wait behind the parent's work.

import mqtt, { type MqttClient } from 'mqtt'
import type { PubackProbeJob, PubackProbeReport, PubackProbeStart } from './puback-probe-protocol.ts'

function report (message: PubackProbeReport): void {
  if (process.send !== undefined && process.connected) process.send(message)
}

process.on('disconnect', () => process.exit(0))
process.on('uncaughtException', (err) => { report({ type: 'failed', message: err.stack ?? err.message }); process.exit(1) })

interface Phase { readonly client: MqttClient, readonly timer: NodeJS.Timeout, readonly latencies: number[], sent: number }

async function start (job: PubackProbeStart): Promise<Phase> {
  const client = await mqtt.connectAsync(job.url, { clientId: job.id, username: job.id, password: job.token, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 10_000 })
  const payload = Buffer.alloc(64, 1)
  const topic = `devices/${job.id}/telemetry`
  const phase: Phase = {
    client,
    latencies: [],
    sent: 0,
    // Open loop: a publish that is due goes out whether or not the earlier ones are acknowledged, so a slow
    // broker shows as latency rather than as a lower rate.
    timer: setInterval(() => {
      phase.sent++
      const t0 = performance.now()
      client.publish(topic, payload, { qos: 1 }, (err) => { if (err == null) phase.latencies.push(performance.now() - t0) })
    }, 1000 / job.rate)
  }
  return phase
}

async function stop (phase: Phase): Promise<{ sent: number, latencies: number[] }> {
  clearInterval(phase.timer)
  // The last PUBACKs: bounded, a probe that lost its connection reports what it has.
  const deadline = Date.now() + 10_000
  while (phase.latencies.length < phase.sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  await phase.client.endAsync(true)
  return { sent: phase.sent, latencies: phase.latencies }
}

report({ type: 'ready' })

let current: Promise<Phase> | undefined
process.on('message', (job: PubackProbeJob) => {
  if (job.type === 'start') {
    current = start(job)
    current.then(() => report({ type: 'started' }), (err: Error) => report({ type: 'failed', message: err.message }))
  } else if (current !== undefined) {
    const phase = current
    current = undefined
    phase.then(stop).then((r) => report({ type: 'stopped', ...r }), (err: Error) => report({ type: 'failed', message: err.message }))
  }
})
