// How an adaptation takes the place of one of kafkajs's internal modules that another of its modules binds when it
// loads (a top-level require): the replacement goes into the module cache before that other module loads.

export type ReplacementState = 'installed' | 'already-installed' | 'too-late'

/**
 * Makes `replacement` the exports of kafkajs's module `target` (a path such as 'kafkajs/src/protocol/request.js').
 * Idempotent. 'too-late' when `boundBy`, the module that takes `target` when it loads, loaded before in this
 * process: it keeps kafkajs's own.
 */
export function replaceKafkajsModule (require: NodeJS.Require, target: string, boundBy: string, replacement: unknown): ReplacementState {
  const path = require.resolve(target)
  if (require.cache[path]?.exports === replacement) return 'already-installed'
  if (require.cache[require.resolve(boundBy)] !== undefined) return 'too-late'
  require(target)
  const mod = require.cache[path]
  if (mod === undefined) throw new Error(`${target} did not load`)
  mod.exports = replacement
  return 'installed'
}
