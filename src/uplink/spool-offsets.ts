import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { FsyncPolicy } from '../config/settings.ts'
import type { Segment, SpoolState } from './spool-state.ts'

// What has been shipped: `release(seq)` marks records shipped, persists that offset (`shipped.json`: write tmp,
// fsync, rename) and deletes segments whose records are all shipped.

export const SHIPPED_OFFSET_FILE = 'shipped.json'

/** The persisted shipped offset of a spool directory, or undefined when nothing was shipped yet. */
export async function readShippedOffset (dir: string): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, SHIPPED_OFFSET_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const seq = (JSON.parse(text) as { shippedSeq?: unknown }).shippedSeq
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new Error(`${SHIPPED_OFFSET_FILE} holds no valid shippedSeq`)
  return seq
}

/** Writes the offset (temporary file, fsync, rename); `syncDir` then makes the rename durable. */
async function writeOffset (dir: string, fsync: FsyncPolicy, seq: number, syncDir: () => Promise<void>): Promise<void> {
  const target = join(dir, SHIPPED_OFFSET_FILE)
  const tmp = `${target}.tmp`
  const fh = await open(tmp, 'w')
  try {
    await fh.write(Buffer.from(JSON.stringify({ shippedSeq: seq }) + '\n'))
    if (fsync !== 'never') await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, target)
  if (fsync !== 'never') await syncDir()
}

export interface SpoolOffsetsOptions {
  readonly fsync: FsyncPolicy
  readonly logger?: Logger
  /** Bytes were freed by a release (before the offset is persisted): waiting appends may go ahead. */
  readonly onFreed: () => void
}

export interface SpoolOffsets {
  /** The reader handed out the record `seq` of `bytes` spool bytes: it may now be released. */
  handedOut (seq: number, bytes: number): void
  /** See `FileSpool.release`. */
  release (uptoSeq: number): Promise<void>
  /** Waits for the offset being persisted and persists the last release if it is not yet. */
  close (): Promise<void>
}

export function createSpoolOffsets (state: SpoolState, opts: SpoolOffsetsOptions): SpoolOffsets {
  const logger = opts.logger
  let persistedSeq = state.shippedSeq
  let persistLoop: Promise<void> | undefined
  // The spool directory stays open for its fsyncs: the offset is written after every shipped batch, and opening
  // and closing the directory for each would be two more file system calls per batch on the event loop's pool.
  let dirHandle: Promise<FileHandle> | undefined
  const syncDir = async (): Promise<void> => {
    if (dirHandle === undefined) {
      const opening = open(state.dir, 'r')
      dirHandle = opening
      opening.catch(() => { if (dirHandle === opening) dirHandle = undefined })
    }
    await (await dirHandle).sync()
  }
  const closeDir = async (): Promise<void> => {
    const dh = dirHandle
    dirHandle = undefined
    await (await dh?.catch(() => undefined))?.close()
  }
  // Records the reader handed out and not yet released: their sequence numbers and line bytes.
  let handedSeqs: number[] = []
  let handedBytes: number[] = []

  /** Deletes segments whose records are all at or below the persisted offset; never the one being written. */
  async function deleteShippedSegments (): Promise<void> {
    const segments = state.segments
    while (segments.length > 1 && segments[0] !== state.current && (segments[1] as Segment).start <= persistedSeq) {
      const s = segments.shift() as Segment
      s.deleted = true
      state.totalBytes -= s.size
      await unlink(s.path).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
    }
  }

  function persistOffset (): Promise<void> {
    persistLoop ??= (async () => {
      try {
        while (persistedSeq < state.shippedSeq) {
          const seq = state.shippedSeq
          await writeOffset(state.dir, opts.fsync, seq, syncDir)
          persistedSeq = seq
          await deleteShippedSegments()
        }
      } finally {
        persistLoop = undefined
      }
    })()
    return persistLoop
  }

  return {
    handedOut (seq, bytes) {
      handedSeqs.push(seq)
      handedBytes.push(bytes)
    },

    release (uptoSeq) {
      if (state.closed || uptoSeq < state.shippedSeq) return Promise.resolve()
      let n = 0
      let freed = 0
      while (n < handedSeqs.length && (handedSeqs[n] as number) <= uptoSeq) freed += handedBytes[n++] as number
      if (n === 0 || (handedSeqs[n - 1] as number) !== uptoSeq) {
        return Promise.reject(new RangeError(`release(${uptoSeq}): only records the reader handed out can be released`))
      }
      handedSeqs = handedSeqs.slice(n)
      handedBytes = handedBytes.slice(n)
      state.unshippedBytes -= freed
      state.shippedSeq = uptoSeq + 1
      opts.onFreed()
      return persistOffset()
    },

    async close () {
      await persistLoop?.catch(() => {})
      if (persistedSeq < state.shippedSeq) {
        await writeOffset(state.dir, opts.fsync, state.shippedSeq, syncDir).catch((err: Error) => logger?.error({ event: 'spool_offset_write_failed', err: err.message }, 'shipped offset not persisted'))
      }
      await closeDir()
    }
  }
}
