import type { SegmentFormat } from './spool-format.ts'

/** One segment file of a spool. */
export interface Segment {
  readonly start: number
  readonly path: string
  readonly format: SegmentFormat
  /** Committed size: bytes written (and synced under policy `always`) so far. */
  size: number
  deleted: boolean
}

/** What recovery finds in a spool directory at open. */
export interface RecoveredSpool {
  /** The segments on disk, oldest first. */
  readonly segments: Segment[]
  nextSeq: number
  totalBytes: number
  shippedSeq: number
  unshippedBytes: number
}

/**
 * The state of one open spool, shared by its parts: group commit appends to `current` and advances `nextSeq`,
 * the offsets advance `shippedSeq` and remove segments, the reader follows `segments` up to `current`.
 */
export interface SpoolState extends RecoveredSpool {
  readonly dir: string
  /** The segment appends go to. */
  current: Segment
  closed: boolean
}
