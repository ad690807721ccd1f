import { randomBytes, randomUUID } from 'node:crypto'
import type { RandomPool } from './random-pool.ts'

// W3C Trace Context (https://www.w3.org/TR/trace-context/): `traceparent: 00-<trace id>-<parent id>-<flags>`.
// Pushline keeps only the trace id (32 lowercase hex digits): it is the one value an operator greps for.

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_PARENT = '0'.repeat(16)

/** The trace id of a valid `traceparent` header, or undefined (absent, malformed, all zeros, or version ff). */
export function traceIdFromTraceparent (header: string | readonly string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined
  const m = TRACEPARENT.exec(header.trim())
  if (m === null) return undefined
  const [, version, traceId, parentId, , rest] = m
  // Version ff is forbidden; version 00 has no fields after the flags (later versions may).
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (traceId === ZERO_TRACE || parentId === ZERO_PARENT) return undefined
  return traceId
}

/**
 * A new random trace id: 32 hex digits, from `random` when given (one hex conversion; a hot path such as the
 * HTTP request ids passes one), else a UUID's bits without its dashes (node buffers its entropy: no syscall).
 */
export function newTraceId (random?: RandomPool): string {
  return random?.hex(16) ?? randomUUID().replaceAll('-', '')
}

/** A `traceparent` for a response or a downstream call: this trace, a new span id, sampled. */
export function traceparentFor (traceId: string, random?: RandomPool): string {
  return `00-${traceId}-${random?.hex(8) ?? randomBytes(8).toString('hex')}-01`
}

export const TRACE_ID_PATTERN = '^[0-9a-f]{32}$'
