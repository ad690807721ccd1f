// CPU per uplink (bench/uplink-throughput.ts, CPU profile of a node): mqtt-packet's parser calls its `debug` logger
// at every step of every packet, about 15 calls for a QoS 1 PUBLISH; each call builds its argument list and asks the
// logger whether it is on, almost a microsecond per uplink with the logger off. The logger is bound once, when
// parser.js loads, so it cannot be swapped afterwards. Instead, when the parser's namespace is off at install, a
// second copy of parser.js is loaded with a logger that does nothing, and the parser prototype's methods that are
// still mqtt-packet's own (same source text in both copies) are taken from that copy. Methods another adaptation
// replaced (slim-client-parser.ts's `_resetState`) are left alone, and so is a parser of another version.
// Touches: mqtt-packet's Parser.prototype (process-wide: aedes's parsers and MQTT.js's) and, for the duration of
// the second load, the module cache entries of parser.js and of the `debug` module it requires.
// Limit: with DEBUG=mqtt-packet:parser (or a wider pattern) at start nothing changes; enabling it later at run time
// (debug.enable) no longer shows the parser's steps. Upstream (mqtt-packet) lacks a way to build without the calls.

import { createRequire } from 'node:module'

const QUIET = Symbol.for('pushline.parserDebugSkipped')
const NAMESPACE = 'mqtt-packet:parser'

type Method = (...args: unknown[]) => unknown
type Prototype = Record<string | symbol, unknown>

interface DebugModule {
  (namespace: string): unknown
  enabled: (namespace: string) => boolean
}

/** The parts of Node's module cache entry that a cached `require` reads. */
interface CacheEntry {
  id: string
  filename: string
  loaded: boolean
  exports: unknown
  children: unknown[]
  paths: string[]
}

const doNothing = (): void => {}

/**
 * Takes the parser's methods from a copy of mqtt-packet's parser.js whose `debug` logger does nothing. Returns the
 * names of the methods replaced; none when already done, when the parser's debug namespace is on, or when the
 * installed parser.js does not export the class its parsers are made from.
 */
export function skipDisabledParserDebug (): string[] {
  const require = createRequire(import.meta.url)
  const parserPath = require.resolve('mqtt-packet/parser.js')
  const Parser = require(parserPath) as { prototype?: Prototype } | undefined
  const proto = Parser?.prototype
  if (proto === undefined || proto[QUIET] === true) return []
  const debugPath = createRequire(parserPath).resolve('debug')
  const debug = createRequire(parserPath)('debug') as DebugModule
  if (typeof debug.enabled !== 'function' || debug.enabled(NAMESPACE)) return []

  const cache = require.cache as Record<string, CacheEntry | undefined>
  const ownParser = cache[parserPath]
  const ownDebug = cache[debugPath]
  let copy: Prototype | undefined
  try {
    delete cache[parserPath]
    cache[debugPath] = { id: debugPath, filename: debugPath, loaded: true, exports: () => doNothing, children: [], paths: [] }
    copy = (require(parserPath) as { prototype?: Prototype } | undefined)?.prototype
  } finally {
    cache[parserPath] = ownParser
    cache[debugPath] = ownDebug
  }
  if (copy === undefined) return []

  const replaced: string[] = []
  for (const name of Object.getOwnPropertyNames(copy)) {
    if (name === 'constructor') continue
    const quiet = copy[name]
    const own = proto[name]
    if (typeof quiet !== 'function' || typeof own !== 'function') continue
    if ((quiet as Method).toString() !== (own as Method).toString()) continue
    proto[name] = quiet
    replaced.push(name)
  }
  Object.defineProperty(proto, QUIET, { value: true })
  return replaced
}
