// A load generator process for bench/flood.ts. Raw TCP clients with hand-made packets, so the generator costs
// little next to the broker:
//   pub  each client publishes QoS 0 on its topic in batches, writing again as soon as its socket takes more
//        (open loop: only TCP pushes back);
//   sub  each client subscribes (QoS 0) and counts the PUBLISH packets it receives.
// The process reports its cumulative count every 250 ms and exits when the parent goes away.

import { connect as netConnect, type Socket } from 'node:net'
import { generate } from 'mqtt-packet'
import type { FloodParentMessage, FloodWorkerMessage } from './flood-protocol.ts'

function send (message: FloodWorkerMessage): void {
  if (process.send !== undefined && process.connected) process.send(message)
}

process.on('disconnect', () => process.exit(0))
process.on('uncaughtException', (err) => { send({ type: 'failed', message: err.stack ?? err.message }); process.exit(1) })

const PACKETS_PER_BATCH = 64
const sockets: Socket[] = []
let count = 0
let running = false
const pumps: Array<() => void> = []

/** Counts PUBLISH packets in a byte stream: fixed header, remaining length, skip the body. */
function publishCounter (onPublish: () => void): (chunk: Buffer) => void {
  let header = -1
  let length = 0
  let shift = 0
  let lengthDone = false
  let remaining = 0
  return (chunk) => {
    let i = 0
    while (i < chunk.length) {
      if (header === -1) {
        header = chunk[i++] as number
        length = 0
        shift = 0
        lengthDone = false
        continue
      }
      if (!lengthDone) {
        const b = chunk[i++] as number
        length += (b & 0x7f) * 2 ** shift
        shift += 7
        if ((b & 0x80) === 0) {
          lengthDone = true
          remaining = length
          if (header >> 4 === 3) onPublish()
          if (remaining === 0) header = -1
        }
        continue
      }
      const take = Math.min(remaining, chunk.length - i)
      i += take
      remaining -= take
      if (remaining === 0) header = -1
    }
  }
}

/** Connects one client and resolves with its CONNACK return code. */
function connectOne (host: string, port: number, clientId: string): Promise<{ socket: Socket, returnCode: number }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port })
    socket.setNoDelay(true)
    sockets.push(socket)
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }))
    })
    socket.once('data', (d: Buffer) => {
      socket.off('error', reject)
      socket.on('error', () => {})
      // CONNACK: 0x20 0x02 flags rc
      resolve({ socket, returnCode: d[0] === 0x20 ? (d[3] as number) : -1 })
    })
  })
}

async function connectAll (m: Extract<FloodParentMessage, { type: 'connect' }>): Promise<void> {
  let connected = 0
  let refused = 0
  const ids = Array.from({ length: m.clients }, (_, i) => `${m.idPrefix}-${i}`)
  // At most 100 connects in flight, so neither broker is measured on a connect storm.
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(ids.slice(i, i + 100).map(async (id) => {
      const { socket, returnCode } = await connectOne(m.host, m.port, id)
      if (returnCode !== 0) { refused++; socket.destroy(); return }
      connected++
      if (m.role === 'sub') {
        await new Promise<void>((resolve) => {
          socket.once('data', () => {
            socket.on('data', publishCounter(() => { count++ }))
            resolve()
          })
          socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: m.topic, qos: 0 }] }))
        })
      } else {
        const one = generate({ cmd: 'publish', topic: m.topic.replace('{id}', id), payload: Buffer.alloc(m.payloadBytes, 0x61), qos: 0, retain: false, dup: false })
        const batch = Buffer.concat(Array.from({ length: PACKETS_PER_BATCH }, () => one))
        // Whatever the broker sends back (nothing, at QoS 0) is read and discarded.
        socket.resume()
        const pump = (): void => {
          if (!running) return
          for (let n = 0; n < 16; n++) {
            count += PACKETS_PER_BATCH
            if (!socket.write(batch)) {
              socket.once('drain', pump)
              return
            }
          }
          if (running) setImmediate(pump)
        }
        pumps.push(pump)
      }
    }))
  }
  send({ type: 'ready', connected, refused })
}

setInterval(() => { send({ type: 'count', at: Date.now(), count }) }, 250).unref()

process.on('message', (m: FloodParentMessage) => {
  if (m.type === 'connect') {
    connectAll(m).catch((err: Error) => { send({ type: 'failed', message: err.message }) })
  } else if (m.type === 'go') {
    running = true
    for (const pump of pumps) pump()
  } else if (m.type === 'stop') {
    running = false
    send({ type: 'count', at: Date.now(), count })
    for (const s of sockets) s.destroy()
  }
})
