import { createHash, timingSafeEqual } from 'node:crypto'

/** True when `given` equals one of `keys`; the comparison time does not depend on where they differ. */
export function matchesAnyKey (given: string, keys: readonly string[]): boolean {
  // Hashing first gives equal-length buffers, so timingSafeEqual never throws and length does not leak.
  const g = createHash('sha256').update(given).digest()
  let found = false
  for (const k of keys) {
    if (timingSafeEqual(g, createHash('sha256').update(k).digest())) found = true
  }
  return found
}
