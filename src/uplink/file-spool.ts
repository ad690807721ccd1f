import { mkdir } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { FsyncPolicy } from '../config/settings.ts'
import { appendSegment, openGroupCommit } from './spool-group-commit.ts'
import { createSpoolOffsets } from './spool-offsets.ts'
import { createSpoolReader, type SpoolReader, type TailingSpoolReader } from './spool-reader.ts'
import { recoverSpool } from './spool-recovery.ts'
import type { SpoolState } from './spool-state.ts'
import type { Uplink, UplinkSink } from './uplink.ts'

export type { SpoolRecord } from './spool-format.ts'
export type { ReadLimits, SpoolBatch, SpoolReader } from './spool-reader.ts'
export { readShippedOffset, SHIPPED_OFFSET_FILE } from './spool-offsets.ts'
export { listSegments, readSpool } from './spool-recovery.ts'

// An append-only, segmented log of uplinks on local disk: one length-prefixed, CRC-checked binary frame per uplink
// (src/uplink/spool-format.ts; segments of the older JSON-lines format are still read and shipped).
// Appends are group-committed: everything queued while a write is in flight goes out in the next single
// write (+ fdatasync with policy `always`), and each append resolves once its record is durable.
//
// It is also the write-ahead log of the Kafka bridge (after EMQX's replayq): one reader tails the committed
// records from the shipped offset on, `release(seq)` marks records shipped, persists that offset
// (`shipped.json`: write tmp, fsync, rename) and deletes segments whose records are all shipped. With
// `maxBytes`, unshipped bytes are bounded: a QoS 1/2 append waits for space (the PUBACK waits with it),
// a QoS 0 append is dropped and counted.
//
// Its parts: recovery at open (spool-recovery.ts), group commit (spool-group-commit.ts), the shipped offset
// and segment removal (spool-offsets.ts) and the reader (spool-reader.ts), sharing one SpoolState.

export interface FileSpoolOptions {
  readonly dir: string
  readonly fsync: FsyncPolicy
  /** A new segment file starts when the current one reaches this size. */
  readonly segmentBytes?: number
  readonly onFlush?: (records: number, bytes: number) => void
  /**
   * Bound on unshipped bytes (records appended and not yet released). Above it, a QoS 1/2 append waits
   * until `release` frees space, and a QoS 0 append is dropped. Undefined: no bound (the spool is the sink).
   */
  readonly maxBytes?: number
  /** A QoS 0 uplink was dropped because the spool was full. */
  readonly onDrop?: (uplink: Uplink) => void
  /** A QoS 1/2 uplink has to wait for space. */
  readonly onWait?: (uplink: Uplink) => void
  /** Drops (rate-limited), unreadable records and a damaged offset file are logged here. */
  readonly logger?: Logger
  /** Committed writes kept in memory for a reader that has caught up, in bytes at most (default 8 MiB). */
  readonly readerMemoryBytes?: number
}

export interface FileSpool extends UplinkSink {
  /** Sequence number the next uplink will get. */
  readonly nextSeq: number
  /** Bytes written to disk and not yet removed. */
  readonly bytes: number
  /** First sequence number not yet shipped; records before it are released. */
  readonly shippedSeq: number
  /** Records appended and not yet released. */
  readonly unshippedRecords: number
  /** Spool bytes of those records (the quantity `maxBytes` bounds). */
  readonly unshippedBytes: number
  /** True while the bound is reached or appends wait for space: QoS 0 uplinks are dropped meanwhile. */
  readonly full: boolean
  /** QoS 1/2 appends waiting for space. */
  readonly waiting: number
  /** The one reader, positioned at the shipped offset (a second call returns the same reader). */
  reader (): SpoolReader
  /**
   * Marks every record up to and including `uptoSeq` shipped: frees their bytes at once (waiting appends go
   * ahead), then persists the offset and deletes whole segments that hold only shipped records. Resolves once
   * the offset is durable. Only records the reader has handed out can be released.
   */
  release (uptoSeq: number): Promise<void>
}

export async function openFileSpool (opts: FileSpoolOptions): Promise<FileSpool> {
  await mkdir(opts.dir, { recursive: true })
  const recovered = await recoverSpool(opts.dir, opts.logger)
  const current = appendSegment(opts.dir, recovered)
  const state: SpoolState = { ...recovered, dir: opts.dir, current, closed: false }
  let readerInstance: TailingSpoolReader | undefined
  const commit = await openGroupCommit(state, {
    fsync: opts.fsync,
    onCommitted: (segment, at, frames) => readerInstance?.committed(segment, at, frames),
    segmentBytes: opts.segmentBytes ?? 64 * 1024 * 1024,
    maxBytes: opts.maxBytes,
    onFlush: opts.onFlush,
    onDrop: opts.onDrop,
    onWait: opts.onWait,
    logger: opts.logger
  })
  const offsets = createSpoolOffsets(state, { fsync: opts.fsync, logger: opts.logger, onFreed: () => commit.admitWaiting() })

  return {
    get nextSeq () { return state.nextSeq },
    get bytes () { return state.totalBytes },
    get shippedSeq () { return state.shippedSeq },
    get unshippedRecords () { return state.nextSeq - state.shippedSeq },
    get unshippedBytes () { return state.unshippedBytes },
    get full () { return commit.full },
    get waiting () { return commit.waiting },

    append (u) {
      return commit.append(u)
    },

    reader () {
      readerInstance ??= createSpoolReader(state, { logger: opts.logger, commitWaiters: commit.commitWaiters, handedOut: offsets.handedOut, recentBytes: opts.readerMemoryBytes })
      return readerInstance
    },

    release (uptoSeq) {
      return offsets.release(uptoSeq)
    },

    async close () {
      if (state.closed) return
      state.closed = true
      await commit.stop()
      await offsets.close()
      await readerInstance?.close()
      await commit.closeFile()
    }
  }
}
