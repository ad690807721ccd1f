// Which node holds each device's connection. Connect and disconnect are atomic; a disconnect removes the entry
// only when its connection epoch still matches, so a late disconnect from an older connection (aedes emits the
// new node's connect before the old node's disconnect) never hides a newer one.
// Implementations: memory-presence-store.ts, redis-presence-store.ts; both pass test/contract/presence-store.spec.ts.

export interface PresenceEntry {
  readonly deviceId: string
  readonly nodeId: string
  /** Unique per connection, increasing across the cluster. */
  readonly epoch: number
  readonly connectedAt: number
}

export interface PresenceConnect {
  readonly entry: PresenceEntry
  /** The entry this connection replaced (a takeover), if any. */
  readonly replaced: PresenceEntry | undefined
}

export type RestoreResult = 'restored' | 'present' | 'superseded'

export interface PresenceStore {
  /** Records a new connection and returns its entry with a fresh epoch. */
  connect (deviceId: string, nodeId: string, at: number): Promise<PresenceConnect>
  /** Removes the entry if it is still this connection's; resolves whether it did. */
  disconnect (deviceId: string, nodeId: string, epoch: number, at: number): Promise<boolean>
  get (deviceId: string): Promise<PresenceEntry | undefined>
  /** get() for many devices in one round trip (push jobs look up a chunk at once); same order as `deviceIds`. */
  getMany (deviceIds: readonly string[]): Promise<Array<PresenceEntry | undefined>>
  /** When the device was last seen connected (its last disconnect), if ever. */
  lastSeen (deviceId: string): Promise<number | undefined>
  /** Total devices online across the cluster. */
  count (): Promise<number>
  /** Entries held by one node. */
  listNode (nodeId: string): Promise<PresenceEntry[]>
  countNode (nodeId: string): Promise<number>
  /**
   * Re-adds a live connection that presence lost (reconciliation): `restored`; `present` when this very entry is
   * there; `superseded` when a newer connection of the device holds the entry (kept): this one was taken over.
   */
  restore (entry: PresenceEntry): Promise<RestoreResult>
  /** Removes every entry of a node (dead-node cleanup); resolves the removed device ids. */
  removeNode (nodeId: string, at: number): Promise<string[]>
  /** Offline devices last seen before `before`, oldest first (for the session reaper). */
  staleSince (before: number, limit: number): Promise<string[]>
  /** Drops a device's last-seen mark once its stored session is gone. */
  forgetSeen (deviceId: string): Promise<void>
}
