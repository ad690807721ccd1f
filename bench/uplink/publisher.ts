// The uplink load of bench/uplink-throughput.ts: MQTT.js devices over TCP, each publishing QoS 1 uplinks with a
// bounded window of unacknowledged publishes (as a device with an outgoing store would), all started together.

import { randomBytes } from 'node:crypto'
import mqtt, { type MqttClient } from 'mqtt'

export interface UplinkDevice {
  readonly deviceId: string
  readonly token: string
}

export interface PublishLoadOptions {
  readonly mqttUrl: string
  readonly devices: readonly UplinkDevice[]
  readonly messagesPerDevice: number
  readonly payloadBytes: number
  /** Publishes in flight (sent, PUBACK not yet back) per device. */
  readonly window: number
  readonly qos: 0 | 1
}

export interface PublishLoadResult {
  readonly firstPublishAt: number
  /** When the last PUBACK arrived (QoS 0: when the last publish was written). */
  readonly lastAckAt: number
  readonly acked: number
  readonly payloadBytes: number
  /** PUBACK latency percentiles, ms (QoS 1). */
  readonly ackLatencyMs: { readonly p50: number, readonly p99: number, readonly max: number }
}

export interface PublishLoad {
  /** Publishes every uplink; resolves when every PUBACK is back. */
  run (): Promise<PublishLoadResult>
  close (): Promise<void>
}

const percentile = (sorted: readonly number[], q: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number

/** Connects every device (untimed), then run() publishes. */
export async function preparePublishLoad (opts: PublishLoadOptions): Promise<PublishLoad> {
  const clients: MqttClient[] = []
  try {
    for (let i = 0; i < opts.devices.length; i += 50) {
      clients.push(...await Promise.all(opts.devices.slice(i, i + 50).map((d) => mqtt.connectAsync(opts.mqttUrl, {
        clientId: d.deviceId,
        username: d.deviceId,
        password: d.token,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        keepalive: 300
      }))))
    }
  } catch (err) {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    throw err
  }
  // Distinct payloads, made before the clock starts: the index in the first bytes, random bytes after it.
  const filler = randomBytes(Math.max(8, opts.payloadBytes))
  const payload = (device: number, i: number): Buffer => {
    const p = Buffer.from(filler)
    p.writeUInt32BE(device, 0)
    p.writeUInt32BE(i, 4)
    return p
  }

  return {
    async run () {
      const latencies: number[] = []
      let acked = 0
      let lastAckAt = 0
      const firstPublishAt = Date.now()
      await Promise.all(clients.map((client, d) => new Promise<void>((resolve, reject) => {
        const id = opts.devices[d]?.deviceId as string
        const topic = `devices/${id}/telemetry`
        let sent = 0
        let done = 0
        const next = (): void => {
          while (sent < opts.messagesPerDevice && sent - done < opts.window) {
            const at = Date.now()
            client.publish(topic, payload(d, sent++), { qos: opts.qos }, (err) => {
              if (err != null) return reject(err)
              const now = Date.now()
              latencies.push(now - at)
              acked++
              done++
              lastAckAt = now
              if (done === opts.messagesPerDevice) resolve()
              else next()
            })
          }
        }
        next()
      })))
      latencies.sort((a, b) => a - b)
      return {
        firstPublishAt,
        lastAckAt,
        acked,
        payloadBytes: acked * Math.max(8, opts.payloadBytes),
        ackLatencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies[latencies.length - 1] ?? 0 }
      }
    },
    async close () {
      await Promise.all(clients.map((c) => c.endAsync(true)))
    }
  }
}
