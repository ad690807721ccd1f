// Runs an async step for every item with at most `limit` steps in flight. Steps that each wait for one Redis round
// trip then share their round trips (ioredis writes the commands of one event loop turn together) instead of paying
// one each, one after another.

/** Calls `step` for every item, at most `limit` at once, in the items' order; rejects with the first failure. */
export async function eachWithLimit<T> (items: Iterable<T>, limit: number, step: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]()
  let failed = false
  const lane = async (): Promise<void> => {
    for (let next = iterator.next(); !next.done && !failed; next = iterator.next()) {
      try {
        await step(next.value)
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, limit) }, lane))
}
