import { randomFillSync } from 'node:crypto'

// Ids handed out once per uplink: a random part drawn once per generator (so per process, and again after 2^48
// ids) followed by a 48-bit counter. Two generators share an id only if they drew the same random part (74 bits
// for the UUID layout, 80 for the trace id), so ids stay unique across nodes and restarts without a draw of
// entropy and a hex conversion per id. Each id is the shared head (all but its last three hex digits, rebuilt
// every 4,096 ids) plus one of 4,096 ready-made tails.

/** Ids per head: the counter's last three hex digits. */
const TAIL_IDS = 0x1000
const TAILS: readonly string[] = Array.from({ length: TAIL_IDS }, (_, i) => i.toString(16).padStart(3, '0'))
/** The counter's range: its 6 bytes. */
const COUNTER_IDS = 2 ** 48

export type CountedIdLayout =
  /** An RFC 9562 UUID of version 8 (vendor-specific): 74 random bits, then the counter as its last 12 hex digits. */
  | 'uuid'
  /** A W3C trace id: 32 lowercase hex digits, 80 random bits then the counter; never all zeros. */
  | 'trace'

export function createCountedIds (layout: CountedIdLayout): () => string {
  // Bytes 0-9 random, 10-15 the counter.
  const bytes = Buffer.alloc(16)
  let counter = COUNTER_IDS
  let head = ''

  const draw = (): void => {
    do randomFillSync(bytes, 0, 10)
    while (bytes.readUInt32BE(0) === 0 && bytes.readUInt32BE(4) === 0 && bytes.readUInt16BE(8) === 0)
    if (layout === 'uuid') {
      bytes[6] = 0x80 | ((bytes[6] as number) & 0x0f) // version 8
      bytes[8] = 0x80 | ((bytes[8] as number) & 0x3f) // variant 10
    }
    counter = 0
  }

  const nextHead = (): void => {
    if (counter >= COUNTER_IDS) draw()
    bytes.writeUIntBE(counter, 10, 6)
    const hex = bytes.toString('hex')
    const text = layout === 'uuid'
      ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
      : hex
    head = text.slice(0, -3)
  }

  return () => {
    const tail = counter % TAIL_IDS
    if (tail === 0) nextHead()
    counter++
    return head + (TAILS[tail] as string)
  }
}
