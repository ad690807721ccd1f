import type { Duplex } from 'node:stream'

// ioredis's auto-pipelining joins the commands of one tick into one write, but a burst of connects spreads a node's
// commands over many ticks of one event loop turn: every socket read (a device's CONNECT, a batch of Redis replies)
// runs in its own tick, and each tick's write was its own syscall, which on loopback also pays for delivering to
// Redis. Holding a turn's writes until its I/O callbacks have run (setImmediate) sends them as one:
// bench/connect-rate.ts measured +10-15% connects per broker CPU second and less Redis CPU.
// The first write of a turn goes out at once, and only the later ones are held: one turn can run for hundreds of
// milliseconds when a node handles tens of thousands of socket reads in it (the PUBACKs and acks of a broadcast),
// and a command held that long (the push API's next round trip, a presence update) waited for all of them.
// Touches: the write method of ioredis's socket (replaced per socket, at every connect; internals.ts finds the
// socket). Upstream (ioredis) batches only within one tick (auto-pipelining) and has no per-turn batching.

const COALESCED = Symbol('pushline.coalescedWrites')

/** From now on, the writes made on `socket` during one event loop turn after its first leave in one syscall. Idempotent. */
export function coalesceWrites (socket: Duplex): void {
  const s = socket as Duplex & { [COALESCED]?: true }
  if (s[COALESCED] === true) return
  s[COALESCED] = true
  let inTurn = false
  let corked = false
  const endTurn = (): void => {
    inTurn = false
    if (corked) {
      corked = false
      socket.uncork()
    }
  }
  const write = socket.write
  socket.write = function (this: Duplex, ...args: Parameters<Duplex['write']>): boolean {
    if (!inTurn) {
      inTurn = true
      setImmediate(endTurn)
    } else if (!corked) {
      corked = true
      socket.cork()
    }
    return write.apply(this, args)
  } as Duplex['write']
}
