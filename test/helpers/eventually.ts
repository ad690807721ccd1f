// The one way tests wait for a state: poll it until it holds, with a bound generous enough for a busy machine.
// A bound is not a margin: it only decides when a test that would never pass gives up.

/** Polls until check() holds or `ms` has passed; returns whether it held. */
export async function eventually (check: () => boolean | Promise<boolean>, ms = 30_000, every = 100): Promise<boolean> {
  const end = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}

/** As eventually(), but throws naming `what` when the state never came. */
export async function waitUntil (what: string, check: () => boolean | Promise<boolean>, ms = 30_000, every = 100): Promise<void> {
  if (!(await eventually(check, ms, every))) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/** Resolves with the promise's value; throws naming `what` if it has not settled after `ms`. */
export async function bounded<T> (what: string, promise: Promise<T>, ms = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
