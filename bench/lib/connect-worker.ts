// A load generator process (forked by connect-load.ts; protocol in connect-protocol.ts): opens raw TCP
// connections, sends an MQTT 3.1.1 CONNECT on each and waits for the CONNACK, with a bounded number in
// flight. Accepted connections stay open until the parent says release. It exits by itself when the parent
// goes away or after job.maxLifetimeMs.
//
// Sockets are closed with an RST (resetAndDestroy), not a FIN: a FIN would leave every connection in TIME_WAIT
// on this side for a minute, and tens of thousands of those slow down connect() in the next rounds (the
// kernel searches the ephemeral port range past them) and can exhaust it.

import { connect, type Socket } from 'node:net'
import { generate, parser, type Packet } from 'mqtt-packet'
import type { ConnectJob, ConnectWorkerResult, ParentMessage, WorkerMessage } from './connect-protocol.ts'

const sockets: Socket[] = []
let releasing = false
let droppedAfterConnack = 0
let job: ConnectJob | undefined
let packets: Buffer[] = []

function send (message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve()
    process.send(message, undefined, {}, () => resolve())
  })
}

function closeAll (): void {
  for (const s of sockets) if (!s.destroyed) s.resetAndDestroy()
}

function exit (code: number): void {
  releasing = true
  closeAll()
  process.exit(code)
}

function prepare (j: ConnectJob): void {
  job = j
  packets = j.clients.map((c) => generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: j.clean,
    keepalive: j.keepaliveSeconds,
    clientId: c.clientId,
    ...(c.username !== undefined && { username: c.username }),
    ...(c.password !== undefined && { password: Buffer.from(c.password, 'utf8') })
  }))
  setTimeout(() => exit(3), j.maxLifetimeMs).unref()
}

function run (j: ConnectJob): Promise<ConnectWorkerResult> {
  return new Promise((resolve) => {
    const total = packets.length
    const latencies = new Float64Array(total)
    const refused: Record<number, number> = {}
    const errorSamples = new Set<string>()
    let accepted = 0
    let errors = 0
    let timeouts = 0
    let next = 0
    let inFlight = 0
    let settledCount = 0
    let lastConnackNs = 0n
    let lastSettledNs = 0n
    const cpu0 = process.cpuUsage()
    const firstConnectNs = process.hrtime.bigint()

    const sample = (message: string): void => { if (errorSamples.size < 5) errorSamples.add(message) }

    const finish = (): void => {
      const cpu = process.cpuUsage(cpu0)
      resolve({
        workerIndex: j.workerIndex,
        attempted: total,
        accepted,
        refused,
        errors,
        timeouts,
        errorSamples: [...errorSamples],
        droppedAfterConnack,
        firstConnectNs,
        lastConnackNs,
        lastSettledNs,
        latenciesMs: latencies.slice(0, accepted),
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system
      })
    }

    const open = (i: number): void => {
      inFlight++
      const started = process.hrtime.bigint()
      const socket = connect({ host: j.host, port: j.port, noDelay: true, ...(j.localAddress !== undefined && { localAddress: j.localAddress }) })
      sockets.push(socket)
      const p = parser({ protocolVersion: 4 })
      let settled = false
      let wasAccepted = false

      const settle = (outcome: 'accepted' | 'refused' | 'error' | 'timeout', detail?: string | number): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        const now = process.hrtime.bigint()
        lastSettledNs = now
        if (outcome === 'accepted') {
          wasAccepted = true
          latencies[accepted++] = Number(now - started) / 1e6
          lastConnackNs = now
        } else {
          if (outcome === 'refused') refused[detail as number] = (refused[detail as number] ?? 0) + 1
          else if (outcome === 'timeout') timeouts++
          else { errors++; sample(String(detail)) }
          if (!socket.destroyed) socket.resetAndDestroy()
        }
        p.removeAllListeners()
        inFlight--
        settledCount++
        if (settledCount === total) finish()
        else launch()
      }

      const timer = setTimeout(() => settle('timeout'), j.connectTimeoutMs)
      p.on('packet', (packet: Packet) => {
        if (packet.cmd !== 'connack') return settle('error', `unexpected ${packet.cmd} before CONNACK`)
        const rc = packet.returnCode ?? 0
        if (rc === 0) settle('accepted')
        else settle('refused', rc)
      })
      p.on('error', (err: Error) => settle('error', `bad packet: ${err.message}`))
      socket.on('data', (chunk: Buffer) => { if (!settled) p.parse(chunk) })
      socket.on('error', (err: Error) => settle('error', err.message))
      socket.on('close', () => {
        if (!settled) settle('error', 'closed before CONNACK')
        else if (wasAccepted && !releasing) droppedAfterConnack++
      })
      socket.write(packets[i] as Buffer)
    }

    const launch = (): void => {
      while (inFlight < j.concurrency && next < total) open(next++)
    }
    if (total === 0) finish()
    else launch()
  })
}

process.on('disconnect', () => exit(0))
process.on('message', (message: ParentMessage) => {
  (async () => {
    switch (message.type) {
      case 'job':
        prepare(message.job)
        await send({ type: 'ready' })
        break
      case 'go': {
        if (job === undefined) throw new Error('go before job')
        const result = await run(job)
        await send({ type: 'result', result })
        break
      }
      case 'release': {
        releasing = true
        const dropped = droppedAfterConnack
        closeAll()
        await send({ type: 'released', droppedAfterConnack: dropped })
        exit(0)
        break
      }
    }
  })().catch(async (err: unknown) => {
    await send({ type: 'failed', message: (err as Error).stack ?? String(err) })
    exit(1)
  })
})
