import { open, readFile, rename, type FileHandle } from 'node:fs/promises'
import type { ReceiptState } from '../stores/receipt-store.ts'

// A receipt transition is committed in the receipt store first and its record spooled after: a process killed in
// between lost the record. So before a transition the streamed store writes what it is about to do, an intent, to
// this journal (synced as PUSHLINE_SPOOL_FSYNC says, group-committed), and marks it done once its records are in
// the receipts spool. Intents still open at the next start are checked against the store, and the records of the
// moves that happened are written then (receipt-recovery.ts; docs/receipts-stream.md, Crash window).
//
// One file, `<receipts dir>/intents.jsonl`: a line per intent {"i": id, ...intent} and per done mark {"d": id}. It
// is rewritten with the open intents only, at start and whenever it has grown past COMPACT_BYTES.

export type ReceiptIntent =
  /** Receipts opened (queued or failed) by a single-device push, or by a list push's chunk commit. */
  | { readonly kind: 'open', readonly pushId: string, readonly deviceIds: readonly string[], readonly at: number }
  | { readonly kind: 'transition', readonly pushId: string, readonly deviceId: string, readonly to: ReceiptState, readonly at: number }
  /** Count-only pushes: devices written the push at QoS 1 (sent) and devices that got it. */
  | { readonly kind: 'count', readonly pushId: string, readonly sent: readonly string[], readonly got: readonly string[], readonly at: number }
  | { readonly kind: 'acks', readonly pushId: string, readonly deviceIds: readonly string[], readonly at: number }
  /** One page of the expiry sweep: the store sets `at` on every receipt it expires. */
  | { readonly kind: 'sweep', readonly pushId: string, readonly at: number }

export interface ReceiptJournal {
  /** Writes the intent; resolves its id once it is durable. */
  begin (intent: ReceiptIntent): Promise<number>
  /** The intent's records are in the spool (or it moved nothing): it is no longer recovered. */
  end (id: number): void
  close (): Promise<void>
}

export interface OpenedReceiptJournal {
  readonly journal: ReceiptJournal
  /** Intents the previous run left open (a crash): recover them, then end() each. */
  readonly leftOpen: ReadonlyArray<{ readonly id: number, readonly intent: ReceiptIntent }>
}

const COMPACT_BYTES = 4 * 1024 * 1024

/** The open intents of a journal's text; a torn last line (a crash mid-write) is skipped. */
function openIntents (text: string): Map<number, string> {
  const intents = new Map<number, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    let entry: { i?: number, d?: number }
    try {
      entry = JSON.parse(line) as { i?: number, d?: number }
    } catch {
      continue
    }
    if (typeof entry.i === 'number') intents.set(entry.i, line)
    else if (typeof entry.d === 'number') intents.delete(entry.d)
  }
  return intents
}

export async function openReceiptJournal ({ path, fsync }: { path: string, fsync: boolean }): Promise<OpenedReceiptJournal> {
  const previous = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return ''
    throw err
  })
  const openLines = openIntents(previous)
  let nextId = Math.max(0, ...openLines.keys()) + 1
  const leftOpen = [...openLines].map(([id, line]) => {
    const { i: _, ...intent } = JSON.parse(line) as ReceiptIntent & { i: number }
    return { id, intent: intent as ReceiptIntent }
  })

  let fh: FileHandle
  let size = 0
  /** Writes the open intents to a new file and puts it in place of the journal. */
  async function rewrite (): Promise<void> {
    const text = [...openLines.values()].map((l) => l + '\n').join('')
    const tmp = `${path}.tmp`
    const t = await open(tmp, 'w')
    await t.writeFile(text)
    await t.sync()
    await t.close()
    await rename(tmp, path)
    fh = await open(path, 'a')
    size = Buffer.byteLength(text)
  }
  await rewrite()

  let pending: string[] = []
  let waiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  let flushing: Promise<void> | undefined
  let closed = false

  async function flush (): Promise<void> {
    while (pending.length > 0) {
      const text = pending.join('')
      const batch = waiters
      pending = []
      waiters = []
      try {
        await fh.write(text)
        if (fsync) await fh.datasync()
        size += Buffer.byteLength(text)
        if (size > COMPACT_BYTES) {
          await fh.close()
          await rewrite()
        }
        for (const w of batch) w.resolve()
      } catch (err) {
        for (const w of batch) w.reject(err as Error)
      }
    }
  }
  function enqueue (line: string): Promise<void> {
    pending.push(line + '\n')
    const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }))
    flushing ??= flush().finally(() => { flushing = undefined })
    return done
  }

  return {
    leftOpen,
    journal: {
      async begin (intent) {
        if (closed) throw new Error('receipt journal closed')
        const id = nextId++
        const line = JSON.stringify({ i: id, ...intent })
        openLines.set(id, line)
        await enqueue(line)
        return id
      },
      end (id) {
        if (!openLines.delete(id) || closed) return
        // Not awaited: a done mark lost in a crash only makes the next start write the intent's records again.
        enqueue(JSON.stringify({ d: id })).catch(() => {})
      },
      async close () {
        closed = true
        await flushing
        await fh.close()
      }
    }
  }
}
