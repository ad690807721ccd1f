import type { Duplex } from 'node:stream'

// ioredis's auto-pipelining joins the commands of one tick into one write, but a burst of connects spreads a node's
// commands over many ticks of one event loop turn: every socket read (a device's CONNECT, a batch of Redis replies)
// runs in its own tick, and each tick's write was its own syscall, which on loopback also pays for delivering to
// Redis. Corking the socket at the first write of a turn and uncorking it once the turn's I/O callbacks have run
// (setImmediate) sends them as one: bench/connect-rate.ts measured +10-15% connects per broker CPU second and
// less Redis CPU. The delay is at most the rest of the current turn.

const COALESCED = Symbol('pushline.coalescedWrites')

/** From now on, the writes made on `socket` during one event loop turn leave in one syscall. Idempotent. */
export function coalesceWrites (socket: Duplex): void {
  const s = socket as Duplex & { [COALESCED]?: true }
  if (s[COALESCED] === true) return
  s[COALESCED] = true
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  const write = socket.write
  socket.write = function (this: Duplex, ...args: Parameters<Duplex['write']>): boolean {
    if (!corked) {
      corked = true
      socket.cork()
      setImmediate(uncork)
    }
    return write.apply(this, args)
  } as Duplex['write']
}
