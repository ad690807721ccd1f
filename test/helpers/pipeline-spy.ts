import { syncBuiltinESMExports } from 'node:module'
import stream from 'node:stream'

/**
 * Counts the calls that reach Node's own stream.pipeline from now on, ES module imports of it (aedes's) included.
 * Install before the empty-queue shortcut (skip-empty-queue-pipeline.ts), which then wraps the spy: the count is
 * exactly the pipelines the shortcut let through. Each test file runs in its own process.
 */
export function spyOnPipeline (): () => number {
  const original = stream.pipeline
  let calls = 0
  ;(stream as unknown as { pipeline: unknown }).pipeline = function spy (...args: Parameters<typeof original>) {
    calls++
    return original(...args)
  }
  syncBuiltinESMExports()
  return () => calls
}
