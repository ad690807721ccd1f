// A load generator process for bench/broadcast.ts (forked by broadcast-load.ts; protocol in
// broadcast-protocol.ts): holds thousands of MQTT 3.1.1 connections over raw TCP with mqtt-packet (MQTT.js
// costs too much memory per client at this count), each subscribed to its topics at QoS 1, and timestamps the
// first receipt of each tagged downlink per client. QoS 1 downlinks are PUBACKed at once; with job.ack the
// client also acks each downlink on devices/{id}/ack with the downlink's id (application ack). It exits by itself
// when the parent goes away or after job.maxLifetimeMs; sockets close with an RST (no TIME_WAIT left behind).

import { connect, type Socket } from 'node:net'
import { generate, parser, type Packet } from 'mqtt-packet'
import type { BroadcastClient, BroadcastJob, BroadcastParentMessage, BroadcastWorkerMessage, Misses } from './broadcast-protocol.ts'

/** A connected and subscribed client: what it received, and how its connection ended if it did. */
interface Subscriber {
  readonly client: BroadcastClient
  readonly seen: Set<string>
  closed?: { readonly why: string, readonly atMs: number }
}

const sockets: Socket[] = []
/** Receive times (ms, monotonic) per downlink tag. */
const received = new Map<string, number[]>()
const subscribers: Subscriber[] = []
/** Connections closed after SUBACK, by why (the socket error, or the broker's FIN). */
const dropReasons: Record<string, number> = {}
let dropped = 0
let releasing = false
const MISS_SAMPLES = 5

/** The subscribers of `topic` (every client when undefined) that did not receive `key`, split by whether their connection is still open. */
function missesOf (key: string, topic: string | undefined): Misses {
  let connected = 0
  let closed = 0
  const samples: string[] = []
  for (const s of subscribers) {
    if ((topic !== undefined && !s.client.topics.includes(topic)) || s.seen.has(key)) continue
    if (s.closed === undefined) {
      if (connected++ < MISS_SAMPLES) samples.push(s.client.clientId)
    } else if (closed++ < MISS_SAMPLES) {
      samples.push(`${s.client.clientId} (closed: ${s.closed.why}, at ${s.closed.atMs.toFixed(0)} ms)`)
    }
  }
  return { connected, dropped: closed, samples }
}

function send (message: BroadcastWorkerMessage): void {
  if (process.send !== undefined && process.connected) process.send(message)
}

function exit (code: number): void {
  releasing = true
  for (const s of sockets) if (!s.destroyed) s.resetAndDestroy()
  process.exit(code)
}

/** The downlink's push id (its tag) and message id ({"id": n} for a targeted push, the push id for a broadcast). */
function tagOf (payload: Buffer): { tag: string, id: unknown } | undefined {
  try {
    const { pushId, id } = JSON.parse(payload.toString('utf8')) as { pushId?: unknown, id?: unknown }
    return typeof pushId === 'string' ? { tag: pushId, id } : undefined
  } catch {
    return undefined
  }
}

/** Connects one client and subscribes; resolves whether both were acknowledged. */
function open (job: BroadcastJob, client: BroadcastClient, sample: (m: string) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: job.host, port: client.port, localAddress: job.localAddress, noDelay: true })
    const p = parser({ protocolVersion: 4 })
    let ready = false
    let settled = false
    const settle = (ok: boolean, why?: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (!ok) {
        if (why !== undefined) sample(why)
        if (!socket.destroyed) socket.resetAndDestroy()
      }
      resolve(ok)
    }
    const timer = setTimeout(() => settle(false, 'timeout'), job.connectTimeoutMs)
    const ackTopic = `devices/${client.clientId}/ack`
    const subscriber: Subscriber = { client, seen: new Set<string>() }
    const seen = subscriber.seen
    let lastError: string | undefined
    let ended = false
    p.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connack') {
        if (packet.returnCode !== 0) return settle(false, `CONNACK ${packet.returnCode}`)
        socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: client.topics.map((topic) => ({ topic, qos: 1 })) }))
      } else if (packet.cmd === 'suback') {
        if (packet.granted.some((g) => typeof g !== 'number' || g > 1)) return settle(false, `SUBACK ${JSON.stringify(packet.granted)}`)
        ready = true
        subscribers.push(subscriber)
        settle(true)
      } else if (packet.cmd === 'publish') {
        const at = Number(process.hrtime.bigint()) / 1e6
        if (packet.qos === 1) socket.write(generate({ cmd: 'puback', messageId: packet.messageId as number }))
        const parsed = tagOf(packet.payload as Buffer)
        if (parsed === undefined || seen.has(parsed.tag)) return
        const tag = parsed.tag
        seen.add(tag)
        let list = received.get(tag)
        if (list === undefined) received.set(tag, list = [])
        list.push(at)
        if (job.ack) socket.write(generate({ cmd: 'publish', topic: ackTopic, payload: JSON.stringify({ id: parsed.id }), qos: 0, retain: false, dup: false }))
      }
    })
    p.on('error', (err: Error) => settle(false, `bad packet: ${err.message}`))
    socket.on('data', (chunk: Buffer) => p.parse(chunk))
    socket.on('error', (err: Error) => {
      lastError = (err as NodeJS.ErrnoException).code ?? err.message
      settle(false, err.message)
    })
    // The broker closing the connection shows as its FIN (end) or as a reset (an error such as ECONNRESET).
    socket.on('end', () => { ended = true })
    socket.on('close', () => {
      if (!settled) settle(false, 'closed before SUBACK')
      else if (ready && !releasing) {
        dropped++
        const why = lastError ?? (ended ? 'FIN from the broker' : 'closed')
        dropReasons[why] = (dropReasons[why] ?? 0) + 1
        subscriber.closed = { why, atMs: Number(process.hrtime.bigint()) / 1e6 }
      }
    })
    socket.once('connect', () => {
      socket.write(generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: job.keepaliveSeconds,
        clientId: client.clientId,
        ...(client.username !== undefined && { username: client.username }),
        ...(client.password !== undefined && { password: Buffer.from(client.password, 'utf8') })
      }))
    })
    sockets.push(socket)
  })
}

async function connectAll (job: BroadcastJob): Promise<{ connected: number, failed: number, samples: string[], byTopic: Record<string, number> }> {
  const samples = new Set<string>()
  const sample = (m: string): void => { if (samples.size < 5) samples.add(m) }
  let next = 0
  let connected = 0
  let failed = 0
  const byTopic: Record<string, number> = {}
  const lane = async (): Promise<void> => {
    while (next < job.clients.length) {
      const client = job.clients[next++] as BroadcastClient
      if (await open(job, client, sample)) {
        connected++
        for (const t of client.topics) byTopic[t] = (byTopic[t] ?? 0) + 1
      } else {
        failed++
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(job.concurrency, job.clients.length) }, lane))
  return { connected, failed, samples: [...samples], byTopic }
}

process.on('disconnect', () => exit(0))
process.on('message', (message: BroadcastParentMessage) => {
  (async () => {
    switch (message.type) {
      case 'job': {
        setTimeout(() => exit(3), message.job.maxLifetimeMs).unref()
        send({ type: 'ready', ...await connectAll(message.job) })
        break
      }
      case 'count':
        send({ type: 'count', key: message.key, received: received.get(message.key)?.length ?? 0 })
        break
      case 'collect': {
        const atMs = received.get(message.key) ?? []
        received.delete(message.key)
        send({ type: 'collected', key: message.key, atMs, dropped, dropReasons, misses: missesOf(message.key, message.topic) })
        break
      }
      case 'release':
        exit(0)
    }
  })().catch((err: unknown) => {
    send({ type: 'failed', message: (err as Error).stack ?? String(err) })
    exit(1)
  })
})
