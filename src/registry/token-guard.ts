import { PushlineError } from '../shared/errors.ts'
import { countFailure, type CounterHit, type CounterStore, type LimitedHit } from '../stores/counter-store.ts'
import type { SecretExchange } from '../stores/secret-exchange-store.ts'

// Limits on the device-facing endpoints: a rate per device id and per source address, and a lock on a
// device's token endpoint after repeated wrong secrets or tokens. The state lives in a CounterStore, so
// every API process of a cluster enforces the same limits.

export interface TokenGuardOptions {
  readonly counters: CounterStore
  readonly devicePerMinute: number
  readonly addressPerMinute: number
  /** Pulls of missed downlinks (GET /v1/devices/me/messages) one device may make per minute. */
  readonly pullsPerMinute?: number
  readonly maxFailures: number
  readonly lockoutMs: number
  /** The clock for Retry-After; the counter store keeps its own. */
  readonly now?: () => number
}

/** The guard's part of a secret exchange (SecretExchangeStore): its limits and keys, and the errors of its refusals. */
export type TokenRules = Pick<SecretExchange, 'hits' | 'lockKey' | 'failuresKey' | 'maxFailures' | 'lockoutMs'> & {
  /** Throws the answer for an exchange the store refused (over a rate limit, or locked), as admitToken would. */
  readonly refuse: (hits: readonly CounterHit[], lock: CounterHit) => never
}

/** What admitToken found out on the way, for the end of the request. */
export interface TokenAdmission {
  /** Wrong secrets or tokens counted against the device in the current window; a success clears them when > 0. */
  readonly failures: number
}

export interface TokenGuard {
  /** Counts a request from `address` (and for `deviceId`, when given); throws IOT_ERR_RATE_LIMITED beyond a limit. */
  admit (address: string, deviceId?: string): Promise<void>
  /**
   * A token request: admit(address, deviceId) and assertUnlocked(deviceId) in one step of the counter store (one Redis
   * round trip), with the same answers in the same order. Also reads the device's failure count.
   */
  admitToken (address: string, deviceId: string): Promise<TokenAdmission>
  /**
   * The same checks as admitToken, and failed(), for a store that makes them in the step that reads the device and
   * stores its token (a token for a secret: one Redis round trip).
   */
  tokenRules (address: string, deviceId: string): TokenRules
  /** Counts a device's pull of its missed downlinks; throws IOT_ERR_RATE_LIMITED beyond its limit. */
  admitPull (deviceId: string): Promise<void>
  /** Throws IOT_ERR_LOCKED while the device's token endpoint is locked. */
  assertUnlocked (deviceId: string): Promise<void>
  /** Records a wrong secret or token; the failure that reaches the limit locks the device for lockoutMs from then. */
  failed (deviceId: string): Promise<void>
  /** A right secret or token clears the failure count. */
  succeeded (deviceId: string): Promise<void>
}

const MINUTE = 60_000

export function createTokenGuard (opts: TokenGuardOptions): TokenGuard {
  const { counters } = opts
  const now = opts.now ?? Date.now
  const retryAfter = (resetAt: number): Record<string, unknown> => ({ retryAfterSeconds: Math.max(1, Math.ceil((resetAt - now()) / 1000)), until: resetAt })
  // Failures are counted in a window of lockoutMs from the first; the lock is a window of its own, opened by the
  // failure that reaches the limit, so it lasts the whole lockoutMs from that failure.
  const failures = (id: string): string => `token-failures:${id}`
  const lock = (id: string): string => `token-lock:${id}`
  // The address first: a request refused for its address is not counted against the device.
  const rateHits = (address: string, deviceId: string | undefined): LimitedHit[] => {
    const byAddress = { key: `rate-address:${address}`, windowMs: MINUTE, limit: opts.addressPerMinute }
    return deviceId === undefined ? [byAddress] : [byAddress, { key: `rate-device:${deviceId}`, windowMs: MINUTE, limit: opts.devicePerMinute }]
  }
  const refuseOverLimit = (hits: readonly CounterHit[]): void => {
    const [byAddress, byDevice] = hits
    if (byAddress !== undefined && byAddress.count > opts.addressPerMinute) {
      throw new PushlineError('IOT_ERR_RATE_LIMITED', 'too many requests from this address', retryAfter(byAddress.resetAt))
    }
    if (byDevice !== undefined && byDevice.count > opts.devicePerMinute) {
      throw new PushlineError('IOT_ERR_RATE_LIMITED', 'too many token requests for this device', retryAfter(byDevice.resetAt))
    }
  }
  const refuseLocked = (l: CounterHit): void => {
    if (l.count > 0) throw new PushlineError('IOT_ERR_LOCKED', 'token endpoint locked after repeated wrong credentials', retryAfter(l.resetAt))
  }
  return {
    async admit (address, deviceId) {
      refuseOverLimit((await counters.hitAndPeek(rateHits(address, deviceId), [])).hits)
    },
    async admitToken (address, deviceId) {
      const { hits, peeks } = await counters.hitAndPeek(rateHits(address, deviceId), [lock(deviceId), failures(deviceId)])
      refuseOverLimit(hits)
      refuseLocked(peeks[0] as CounterHit)
      return { failures: (peeks[1] as CounterHit).count }
    },
    tokenRules (address, deviceId) {
      return {
        hits: rateHits(address, deviceId),
        lockKey: lock(deviceId),
        failuresKey: failures(deviceId),
        maxFailures: opts.maxFailures,
        lockoutMs: opts.lockoutMs,
        refuse (hits, l) {
          refuseOverLimit(hits)
          refuseLocked(l)
          throw new Error('a refused secret exchange is over no limit and not locked')
        }
      }
    },
    async admitPull (deviceId) {
      if (opts.pullsPerMinute === undefined) return
      const byDevice = await counters.hit(`rate-pull:${deviceId}`, MINUTE)
      if (byDevice.count > opts.pullsPerMinute) {
        throw new PushlineError('IOT_ERR_RATE_LIMITED', 'too many message pulls for this device', retryAfter(byDevice.resetAt))
      }
    },
    async assertUnlocked (deviceId) {
      refuseLocked(await counters.peek(lock(deviceId)))
    },
    async failed (deviceId) {
      await countFailure(counters, { failuresKey: failures(deviceId), lockKey: lock(deviceId) }, opts.maxFailures, opts.lockoutMs)
    },
    async succeeded (deviceId) {
      await counters.reset(failures(deviceId))
    }
  }
}
