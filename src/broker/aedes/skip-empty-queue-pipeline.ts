import { syncBuiltinESMExports } from 'node:module'
import stream, { Readable } from 'node:stream'

// aedes 1.2 ends every CONNECT by draining the session's stored queue: stream.pipeline(outgoingStream(client),
// through(...), done), clean session or not. A clean session's queue is empty by definition
// (skip-idle-persistence-round-trips.ts hands it an empty stream), yet the pipeline costs about 45 µs of CPU per connect
// (AbortController, an abort DOMException, end-of-stream listeners on both streams) and the garbage it leaves:
// bench/connect-rate.ts measured 2,797 → 4,748 connects per broker CPU second without it.
// aedes imports `pipeline` by name from 'stream' and has no hook around that step, so the empty streams handed out
// for clean sessions carry a mark, and stream.pipeline answers a pipeline whose source is marked at once: its
// callback on the next tick, as pipeline's own would be, without reading or writing anything. Every other call,
// from aedes or anything else in the process, goes to the original pipeline unchanged.
// Touches: Node's stream.pipeline export, for the whole process (syncBuiltinESMExports). Upstream lacks a hook
// around draining the stored queue at CONNECT.

const MARK = Symbol.for('pushline.emptyQueue')
const INSTALLED = Symbol.for('pushline.emptyQueuePipeline')

type Callback = (err?: Error | null) => void
type PipelineFn = (...args: unknown[]) => unknown

function isMarked (source: unknown): boolean {
  return typeof source === 'object' && source !== null && (source as Record<symbol, unknown>)[MARK] === true
}

/** An empty stream for a clean session's stored queue; a pipeline from it completes without running (see above). */
export function emptyQueueStream (): Readable {
  const empty = new Readable({ objectMode: true, read () { this.push(null) } })
  Object.defineProperty(empty, MARK, { value: true })
  return empty
}

/** Puts the shortcut in front of stream.pipeline for the whole process, once; idempotent. */
export function installEmptyQueueShortcut (): void {
  const current = stream.pipeline as unknown as PipelineFn & Record<symbol, unknown>
  if (current[INSTALLED] === true) return
  const shortcut = function pipeline (...args: unknown[]): unknown {
    const callback = args[args.length - 1]
    if (args.length >= 3 && isMarked(args[0]) && typeof callback === 'function') {
      process.nextTick(callback as Callback)
      return args[args.length - 2]
    }
    return current(...args)
  } as PipelineFn & Record<symbol, unknown>
  // util.promisify(pipeline) reads the original's promisify.custom.
  for (const key of Object.getOwnPropertySymbols(current)) shortcut[key] = current[key]
  Object.defineProperty(shortcut, INSTALLED, { value: true })
  ;(stream as unknown as { pipeline: unknown }).pipeline = shortcut
  // ES module imports of 'stream' (aedes's) are bound to a copy of the exports; this updates them.
  syncBuiltinESMExports()
}
