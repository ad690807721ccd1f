import type { Device } from './device-store.ts'
import type { CounterHit, LimitedHit } from './counter-store.ts'

// A device's secret exchanged for a token in one step (one Redis round trip): the rate limits and the lock of the
// token endpoint, the device read and the secret check, the failure count, and the token record. It works on the
// data of three stores (counter-store.ts, device-store.ts, token-store.ts) under their keys, so the other paths
// (token refresh, lockout, revocation) see what it did. Implementations: memory-secret-exchange-store.ts,
// redis-secret-exchange-store.ts; both pass test/contract/secret-exchange-store.spec.ts.

export interface SecretExchange {
  readonly deviceId: string
  /** Counted in order, stopping at the first over its limit (CounterStore.hitAndPeek); then the request is refused. */
  readonly hits: readonly LimitedHit[]
  /** Counter key of the device's lock: a window open on it refuses the request. */
  readonly lockKey: string
  /** Counter key of the device's wrong secrets: maxFailures of them within lockoutMs open the lock for lockoutMs. */
  readonly failuresKey: string
  readonly maxFailures: number
  readonly lockoutMs: number
  /** hashSecret() of the secret presented (src/auth/secret-hash.ts). */
  readonly secretHash: string
  /** Where the token is stored when the secret is right (hashToken() of the new token), and until when. */
  readonly tokenHash: string
  readonly expiresAt: number
}

export type SecretExchangeOutcome =
  /** Over a rate limit or locked: `hits` up to the one over its limit, and the lock; nothing else was done. */
  | { readonly status: 'refused', readonly hits: readonly CounterHit[], readonly lock: CounterHit }
  /** Unknown device or wrong secret: the failure was counted (and the lock opened when it was the last allowed). */
  | { readonly status: 'bad-credentials' }
  /** Right secret, disabled device: nothing written beyond the hits. */
  | { readonly status: 'disabled' }
  /**
   * The stored secret is in an older form (isLegacySecretHash) and is checked by the caller: nothing written beyond
   * the hits. `failures` is the device's current failure count.
   */
  | { readonly status: 'legacy', readonly device: Device, readonly failures: number }
  /** The token is stored (with the device's groups) and the failure count cleared. */
  | { readonly status: 'issued' }

export interface SecretExchangeStore {
  exchange (request: SecretExchange): Promise<SecretExchangeOutcome>
}
