// Keeps a log line that may repeat thousands of times a second (drops under overload) to one per interval,
// and tells that line how many it stood for.

/** Returns `log(emit)`: calls `emit(suppressed)` at most once per interval, with the number of calls skipped since. */
export function createLogThrottle (intervalMs: number, now: () => number = Date.now): (emit: (suppressed: number) => void) => void {
  let last = -Infinity
  let suppressed = 0
  return (emit) => {
    const t = now()
    if (t - last < intervalMs) {
      suppressed++
      return
    }
    last = t
    const n = suppressed
    suppressed = 0
    emit(n)
  }
}
