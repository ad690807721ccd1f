// The default engine: one MQTT.js client per device, with its own socket factory so the socket can be bound
// to a source address. MQTT.js's own reconnect is off: the device decides when and where to reconnect.

import { createConnection } from 'node:net'
import { MqttClient } from 'mqtt'
import { ConnectError, hostPort, type Connector, type DeviceConnection } from './connection.ts'

export const connectMqttjs: Connector = (p) => new Promise((resolve, reject) => {
  const { host, port } = hostPort(p.url)
  const client = new MqttClient(() => createConnection({ host, port, ...(p.localAddress !== undefined && { localAddress: p.localAddress }) }), {
    clientId: p.clientId,
    username: p.username,
    password: p.password,
    keepalive: p.keepalive,
    clean: p.clean,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: p.timeoutMs,
    resubscribe: false
  })
  let settled = false
  let closeHandler: ((reason: string) => void) | undefined
  let ended = false
  let lastError = 'connection closed'
  client.on('error', (err: Error & { code?: string | number }) => {
    lastError = err.message
    if (settled) return
    settled = true
    client.end(true)
    if (typeof err.code === 'number') reject(new ConnectError('refused', `CONNACK ${err.code}: ${err.message}`, err.code))
    else if (err.message === 'connack timeout') reject(new ConnectError('timeout', err.message))
    else reject(new ConnectError('network', err.code ?? err.message))
  })
  client.on('close', () => {
    if (!settled) {
      settled = true
      client.end(true)
      reject(new ConnectError('network', 'closed before CONNACK'))
      return
    }
    if (ended) return
    ended = true
    client.end(true)
    closeHandler?.(lastError)
  })
  client.once('connect', () => {
    settled = true
    const conn: DeviceConnection = {
      publish: (topic, payload, qos) => new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos }, (err) => { if (err === undefined || err === null) resolve(); else reject(err) })
      }),
      subscribe: (filters, qos) => new Promise((resolve, reject) => {
        client.subscribe(filters.map((f) => f), { qos }, (err, granted) => {
          if (err !== null && err !== undefined) reject(err)
          else resolve((granted ?? []).map((g) => g.qos))
        })
      }),
      onMessage: (handler) => { client.on('message', (topic, payload) => handler(topic, payload)) },
      onClose: (handler) => { closeHandler = handler },
      end: () => {
        ended = true
        client.end(true)
      }
    }
    resolve(conn)
  })
})
