import { randomFillSync } from 'node:crypto'

// Random bytes for tokens, secrets and span ids, drawn from a buffer the system's generator fills in bulk: one call
// into OpenSSL per `size` bytes instead of one per value, which the profile of the token route showed as a
// measurable share of its CPU. Node's randomUUID() keeps its entropy the same way. Each byte is handed out once.

export interface RandomPool {
  /** `n` random bytes (at most the pool's size), base64url. */
  base64url (n: number): string
  /** `n` random bytes (at most the pool's size), lowercase hex. */
  hex (n: number): string
}

export function createRandomPool (size = 4096): RandomPool {
  const pool = Buffer.allocUnsafeSlow(size)
  let offset = size
  const take = (n: number): number => {
    if (n > size) throw new RangeError(`asked for ${n} random bytes from a pool of ${size}`)
    if (offset + n > size) {
      randomFillSync(pool)
      offset = 0
    }
    const from = offset
    offset += n
    return from
  }
  return {
    base64url (n) {
      const from = take(n)
      return pool.toString('base64url', from, from + n)
    },
    hex (n) {
      const from = take(n)
      return pool.toString('hex', from, from + n)
    }
  }
}
