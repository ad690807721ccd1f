// A load generator process for bench/cross-node-latency.ts (forked by latency-load.ts). One role per process:
//
//   sub    MQTT.js clients (clean sessions), client i subscribed to its own topic; records, per phase, receive
//          time minus the send time carried in the payload (process.hrtime.bigint(): CLOCK_MONOTONIC, the same
//          clock in every process of this host).
//   pub    one MQTT.js client publishing open loop at a fixed rate, round-robin over the topics; a message that
//          is due is sent even if the previous ones are not acknowledged yet, so a slow broker shows up as
//          latency, not as a lower rate.
//   churn  raw TCP + mqtt-packet clients connecting (wait for CONNACK) and disconnecting (DISCONNECT, then FIN)
//          in a loop, alternating between the given ports; at the end the even-numbered clients connect once
//          more and stay connected, so the benchmark knows exactly how many must be online.
//
// Payload: byte 0 the phase number, bytes 1..8 the send time (ns, big-endian). The process exits by itself
// when the parent goes away.

import { connect as netConnect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt, { type MqttClient } from 'mqtt'
import { generate } from 'mqtt-packet'
import type { LatencyParentMessage, LatencyWorkerMessage } from './latency-protocol.ts'

function send (message: LatencyWorkerMessage): void {
  if (process.send !== undefined && process.connected) process.send(message)
}

process.on('disconnect', () => process.exit(0))
process.on('uncaughtException', (err) => { send({ type: 'failed', message: err.stack ?? err.message }); process.exit(1) })

const clients: MqttClient[] = []
const sockets: Socket[] = []

// --- sub ---------------------------------------------------------------------------------------------------
const samples = new Map<number, number[]>()

function connectClient (host: string, port: number, clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host, port, protocol: 'mqtt', protocolVersion: 4, clean: true, clientId, keepalive: 60, reconnectPeriod: 0, connectTimeout: 10_000 })
    client.once('connect', () => resolve(client))
    client.once('error', reject)
    clients.push(client)
  })
}

async function startSubscribers (host: string, port: number, topics: readonly string[], qos: 0 | 1, idPrefix: string): Promise<void> {
  await Promise.all(topics.map(async (topic, i) => {
    const client = await connectClient(host, port, `${idPrefix}-sub-${i}`)
    client.on('message', (_topic, payload) => {
      const now = process.hrtime.bigint()
      if (payload.length < 9) return
      const phase = payload[0] as number
      const sent = payload.readBigInt64BE(1)
      let list = samples.get(phase)
      if (list === undefined) samples.set(phase, list = [])
      list.push(Number(now - sent) / 1e6)
    })
    await client.subscribeAsync(topic, { qos })
  }))
}

// --- pub ---------------------------------------------------------------------------------------------------
let publisher: MqttClient | undefined

async function publish (phase: number, rate: number, seconds: number, topics: readonly string[], qos: 0 | 1): Promise<{ sent: number, errors: number, lateMs: number }> {
  const client = publisher as MqttClient
  const total = Math.round(rate * seconds)
  const start = process.hrtime.bigint()
  let sent = 0
  let errors = 0
  let next = 0
  let lateMs = 0
  while (sent < total) {
    const elapsedNs = Number(process.hrtime.bigint() - start)
    const due = Math.min(total, Math.floor(elapsedNs * rate / 1e9) + 1)
    lateMs = Math.max(lateMs, ((due - sent - 1) / rate) * 1000)
    while (sent < due) {
      const payload = Buffer.allocUnsafe(9)
      payload[0] = phase
      payload.writeBigInt64BE(process.hrtime.bigint(), 1)
      client.publish(topics[next] as string, payload, { qos }, (err) => { if (err != null) errors++ })
      next = (next + 1) % topics.length
      sent++
    }
    // ~1 ms ticks; at 10,000 msg/s that is ~10 messages per tick.
    await sleep(1)
  }
  return { sent, errors, lateMs }
}

// --- churn -------------------------------------------------------------------------------------------------
const DISCONNECT = generate({ cmd: 'disconnect' })

/** One connect: resolves true on CONNACK 0 with the socket still open. */
function churnConnect (host: string, port: number, packet: Buffer, timeoutMs: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port })
    socket.setNoDelay(true)
    let buf = Buffer.alloc(0)
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      socket.removeAllListeners('data')
      if (!ok) socket.destroy()
      resolve(ok ? socket : undefined)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on('error', () => done(false))
    socket.once('connect', () => socket.write(packet))
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length >= 4) done(buf[0] === 0x20 && buf[3] === 0)
    })
  })
}

function churnDisconnect (socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve())
    socket.on('error', () => {})
    socket.end(DISCONNECT)
    setTimeout(() => { socket.destroy(); resolve() }, 5000).unref()
  })
}

async function churn (host: string, ports: readonly number[], clientIds: readonly string[], seconds: number, finalEven: boolean): Promise<{ connects: number, failures: number, finalConnected: number, seconds: number }> {
  const packets = clientIds.map((clientId) => generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60 }))
  const start = Date.now()
  const endAt = start + seconds * 1000
  let connects = 0
  let failures = 0
  let finalConnected = 0
  await Promise.all(packets.map(async (packet, i) => {
    let cycle = 0
    while (Date.now() < endAt) {
      const socket = await churnConnect(host, ports[(i + cycle) % ports.length] as number, packet, 10_000)
      cycle++
      if (socket === undefined) { failures++; await sleep(10); continue }
      connects++
      await churnDisconnect(socket)
    }
    if (finalEven && i % 2 === 0) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const socket = await churnConnect(host, ports[(i + cycle) % ports.length] as number, packet, 10_000)
        if (socket !== undefined) { sockets.push(socket); finalConnected++; break }
        failures++
        await sleep(100)
      }
    }
  }))
  return { connects, failures, finalConnected, seconds: (Date.now() - start) / 1000 }
}

// --- IPC ---------------------------------------------------------------------------------------------------
process.on('message', (message: LatencyParentMessage) => {
  const run = async (): Promise<void> => {
    switch (message.type) {
      case 'subscribe':
        await startSubscribers(message.host, message.port, message.topics, message.qos, message.idPrefix)
        return send({ type: 'ready' })
      case 'connect-publisher':
        publisher = await connectClient(message.host, message.port, `${message.idPrefix}-pub`)
        return send({ type: 'ready' })
      case 'publish':
        return send({ type: 'published', ...(await publish(message.phase, message.rate, message.seconds, message.topics, message.qos)) })
      case 'collect': {
        const list = samples.get(message.phase) ?? []
        samples.delete(message.phase)
        return send({ type: 'samples', latenciesMs: list })
      }
      case 'churn':
        return send({ type: 'churned', ...(await churn(message.host, message.ports, message.clientIds, message.seconds, message.finalEven)) })
      case 'close':
        await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})))
        for (const s of sockets) s.destroy()
        return send({ type: 'closed' })
    }
  }
  run().catch((err: Error) => send({ type: 'failed', message: err.stack ?? err.message }))
})
send({ type: 'started' })
