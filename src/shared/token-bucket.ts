/** A token bucket: take() is true while a token is left; tokens come back at perSecond, up to burst. */
export function createTokenBucket (perSecond: number, burst: number, now: () => number = Date.now): { take: () => boolean } {
  let tokens = burst
  let last = now()
  return {
    take () {
      const t = now()
      tokens = Math.min(burst, tokens + (t - last) * perSecond / 1000)
      last = t
      if (tokens < 1) return false
      tokens -= 1
      return true
    }
  }
}
