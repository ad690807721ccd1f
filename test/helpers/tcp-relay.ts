import { createServer, connect as netConnect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'

// A TCP relay on loopback between the platform and a real server (Redis), for tests that must hold the platform's
// commands in flight for as long as they like: while held, what the platform sends is kept here, unsent, and sent in
// order on release. The server's answers always pass.

export interface TcpRelay {
  /** The relay's port on 127.0.0.1. */
  readonly port: number
  /** From now on, bytes from the platform wait here, on every connection, old and new. */
  hold (): void
  /** Sends what waited, in order, and lets everything through again. */
  release (): void
  /** What the platform wrote so far, held or passed on: each connection's bytes in one string (latin1), to look for a key. */
  written (): string[]
}

export async function startTcpRelay (t: TestContext, target: { host: string, port: number }): Promise<TcpRelay> {
  let held = false
  const pending = new Map<Socket, Buffer[]>()
  const sockets = new Set<Socket>()
  const logs: Buffer[][] = []
  const server = createServer((inbound) => {
    const outbound = netConnect(target.port, target.host)
    sockets.add(inbound).add(outbound)
    const waiting: Buffer[] = []
    pending.set(outbound, waiting)
    const log: Buffer[] = []
    logs.push(log)
    inbound.on('data', (chunk: Buffer) => {
      log.push(chunk)
      if (held) waiting.push(chunk); else outbound.write(chunk)
    })
    outbound.on('data', (chunk: Buffer) => inbound.write(chunk))
    const close = (): void => {
      inbound.destroy()
      outbound.destroy()
      pending.delete(outbound)
    }
    inbound.on('close', close).on('error', close)
    outbound.on('close', close).on('error', close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('relay has no port')
  return {
    port: address.port,
    hold () { held = true },
    release () {
      held = false
      for (const [outbound, waiting] of pending) for (const chunk of waiting.splice(0)) outbound.write(chunk)
    },
    written: () => logs.map((log) => Buffer.concat(log).toString('latin1'))
  }
}
