// ioredis's commandTimeout rejects a command when its timer fires. After the event loop was held up longer than the
// timeout (a starved process: a burst of connects on a node sharing its cores), libuv runs the timers phase before
// the poll phase that reads the socket, so every command in flight was rejected although Redis had answered and the
// replies were waiting in the socket: Redis did the work, the caller gave up (a device refused, a presence write
// repeated) and the retries added to the load that stalled the loop (docs/cluster.md, Membership).
// Here the timer only schedules the decision for the check phase of the same loop turn (setImmediate), which runs
// after the poll phase: a reply already received resolves the command first, and only a command still unanswered is
// rejected. A Redis that is gone or hung still fails every command within the timeout plus one loop turn.
// Touches: the connection's sendCommand (replaced per instance, internals.ts), and each command's resolve and reject
// (wrapped per command, to clear its timer); ioredis's own commandTimeout option is left unset. Upstream (ioredis) has no way to make its timeout wait for pending socket reads.

import type { Command, Redis } from 'ioredis'
import { replaceSendCommand } from './internals.ts'

export const COMMAND_TIMED_OUT = 'Command timed out'

// Marks a command whose timer runs: ioredis passes a command through sendCommand again when it leaves the offline
// queue, and its timer runs from the first pass.
const TIMED = Symbol('pushline.commandTimer')

/** From now on, a command of `redis` unanswered `ms` after it was sent, once the socket's pending replies are read, fails with "Command timed out". */
export function timeOutUnansweredCommands (redis: Redis, ms: number): void {
  replaceSendCommand(redis, (send) => (command: Command & { [TIMED]?: true }, stream) => {
    if (command[TIMED] !== true) {
      command[TIMED] = true
      const timer = setTimeout(() => {
        setImmediate(() => { if (!command.isResolved) command.reject(new Error(COMMAND_TIMED_OUT)) })
      }, ms)
      // The timer goes when the command settles (before it is sent: a closed connection rejects it at once), as
      // ioredis's own does. Wrapping the two settle functions costs about what ioredis's timer did; a reaction on the
      // command's promise instead cost half as much again per command.
      const { resolve, reject } = command
      command.resolve = (value) => { clearTimeout(timer); resolve(value) }
      command.reject = (err) => { clearTimeout(timer); reject(err) }
    }
    return send(command, stream)
  })
}
