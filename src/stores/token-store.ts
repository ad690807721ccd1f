// Device tokens, stored by the SHA-256 of the token so a dump of the store does not leak usable tokens.
// A broker validates a token with one `get`: disabling, deleting or revoking a device removes its tokens,
// so a token that is found belongs to an enabled device. Implementations: memory-token-store.ts, redis-token-store.ts.

export interface TokenRecord {
  readonly deviceId: string
  readonly expiresAt: number
  /** The device's groups when the token was issued: the broker's ACL needs them and should not pay a second lookup. */
  readonly groups: readonly string[]
}

export interface TokenStore {
  /** Stores a token until record.expiresAt. */
  put (tokenHash: string, record: TokenRecord): Promise<void>
  /** The record if the token exists and has not expired at `now`. */
  get (tokenHash: string, now: number): Promise<TokenRecord | undefined>
  delete (tokenHash: string): Promise<void>
  /**
   * Reads and deletes the token in one atomic step if it is a live token of `deviceId` (a refresh): of several
   * concurrent takes of one token exactly one gets the record. A token of another device is left alone.
   */
  take (tokenHash: string, deviceId: string, now: number): Promise<TokenRecord | undefined>
  /** Deletes every token of the device; resolves to how many there were. */
  revokeDevice (deviceId: string): Promise<number>
}
