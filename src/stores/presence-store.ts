// Which node holds each device's connection. Connect and disconnect are atomic; a disconnect removes the entry
// only when its connection epoch still matches, so a late disconnect from an older connection (aedes emits the
// new node's connect before the old node's disconnect) never hides a newer one.
// Implementations: memory-presence-store.ts, redis-presence-store.ts; both pass test/contract/presence-store.spec.ts.

/** How a device reached its node: MQTT over TCP, over TLS, over WebSocket, over WebSocket over TLS. */
export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'

export const TRANSPORTS: readonly Transport[] = ['tcp', 'tls', 'ws', 'wss']

/** Where a connection comes from: recorded with its presence entry for the operators' listing. */
export interface ConnectionOrigin {
  readonly transport: Transport
  /** The client's address as the node sees it, `ip:port` (`[ip]:port` for IPv6). */
  readonly address: string
}

export interface PresenceEntry {
  readonly deviceId: string
  readonly nodeId: string
  /** Unique per connection, increasing across the cluster. */
  readonly epoch: number
  readonly connectedAt: number
  /** Absent when the connect did not give one (entries written by tools and older nodes). */
  readonly transport?: Transport
  readonly address?: string
  /**
   * Which connection wrote the entry (unique per connection in the cluster), when the connect gave one: a retried
   * connect recognises its own earlier write by it.
   */
  readonly connection?: string
}

export interface OnlineQuery {
  /** Devices whose id sorts after this one (exclusive). */
  readonly after?: string
  readonly limit: number
  /** Only the devices this node holds. */
  readonly nodeId?: string
}

export interface OnlinePage {
  /** Ordered by device id. */
  readonly entries: readonly PresenceEntry[]
  /** Pass as `after` for the next page; undefined on the last page. */
  readonly next: string | undefined
}

/**
 * What a connect did: `connected`, it wrote a fresh entry; `adopted`, the entry of this very connection (same
 * `connection`) was there already, written by an earlier attempt whose reply was lost, and is kept as it is;
 * `superseded`, a newer connection of the device (a later connect time, on another node) holds the entry, which is
 * kept.
 */
export type ConnectResult = 'connected' | 'adopted' | 'superseded'

export interface PresenceConnect {
  readonly result: ConnectResult
  /** This connection's entry; when superseded, the newer connection's. */
  readonly entry: PresenceEntry
  /** The entry this connection replaced (a takeover), if any; only when connected. */
  readonly replaced: PresenceEntry | undefined
}

export type RestoreResult = 'restored' | 'present' | 'superseded'

export interface RestoreOutcome {
  readonly result: RestoreResult
  /**
   * The entry as stored now: when restored, the connection's entry under a fresh epoch (so the `connected` event of
   * the re-add orders after any `disconnected` event of the removal, docs/cluster.md); when present, the same;
   * when superseded, the newer connection's entry.
   */
  readonly entry: PresenceEntry
}

export interface PresenceStore {
  /**
   * Records a new connection and returns its entry with a fresh epoch (one round trip: it runs per connect). It never
   * replaces the entry of a connection made later (`at`) on another node: a write that ran late loses to the
   * connection that came after it. (One node's writes reach the store in the order of its connections.) With
   * `connection` (an id unique to this connection) it may be repeated after a failed or timed-out attempt: the repeat
   * adopts the entry if the attempt ran, writes it if not, and reports a newer connection.
   */
  connect (deviceId: string, nodeId: string, at: number, origin?: ConnectionOrigin, connection?: string): Promise<PresenceConnect>
  /** Removes the entry if it is still this connection's; resolves whether it did. */
  disconnect (deviceId: string, nodeId: string, epoch: number, at: number): Promise<boolean>
  get (deviceId: string): Promise<PresenceEntry | undefined>
  /** get() for many devices in one round trip (push jobs look up a chunk at once); same order as `deviceIds`. */
  getMany (deviceIds: readonly string[]): Promise<Array<PresenceEntry | undefined>>
  /** When the device was last seen connected (its last disconnect), if ever. */
  lastSeen (deviceId: string): Promise<number | undefined>
  /** Total devices online across the cluster: the number of entries list() pages through. */
  count (): Promise<number>
  /** The online devices by id, paged; each page is one consistent read. */
  list (query: OnlineQuery): Promise<OnlinePage>
  /** Entries held by one node. */
  listNode (nodeId: string): Promise<PresenceEntry[]>
  countNode (nodeId: string): Promise<number>
  /**
   * Re-adds a live connection that presence lost (reconciliation, or a node-dead sweep of a node that was only
   * late): `restored`, under a fresh epoch; `present` when this very entry is there; `superseded` when a newer
   * connection of the device holds the entry (kept): this one was taken over.
   */
  restore (entry: PresenceEntry): Promise<RestoreOutcome>
  /** Removes every entry of a node (dead-node cleanup); resolves the removed entries. */
  removeNode (nodeId: string, at: number): Promise<PresenceEntry[]>
  /** Offline devices last seen before `before`, oldest first (for the session reaper). */
  staleSince (before: number, limit: number): Promise<string[]>
  /** Drops a device's last-seen mark once its stored session is gone. */
  forgetSeen (deviceId: string): Promise<void>
}
