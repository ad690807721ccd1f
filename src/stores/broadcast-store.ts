// Live group and broadcast pushes: each one's message is kept until its ttl ends and indexed by its topic
// (broadcast/all, broadcast/groups/{group}) by expiry, so a node can write it to a device that subscribes later
// (catch-up of broadcasts, src/push/broadcast-downlinks.ts). Expired ones leave the index as it is read or written.
// Implementations: memory-broadcast-store.ts, redis-broadcast-store.ts; both pass test/contract/broadcast-store.spec.ts.

export interface LiveBroadcast {
  readonly pushId: string
  /** broadcast/all or broadcast/groups/{group}. */
  readonly topic: string
  readonly qos: 0 | 1
  readonly sentAt: number
  readonly data: unknown
  readonly traceId?: string
  /** Epoch ms when the push's ttl ends. */
  readonly expiresAt: number
}

export interface BroadcastStore {
  /** Keeps the broadcast until its expiresAt; one already expired is not kept. */
  add (broadcast: LiveBroadcast): Promise<void>
  /** Broadcasts on `topic` not expired at `at`, earliest expiry first. */
  liveOn (topic: string, at: number): Promise<LiveBroadcast[]>
  /** Every broadcast not expired at `at`, on any topic, earliest expiry first (a node's cache at start). */
  live (at: number): Promise<LiveBroadcast[]>
  /** How many broadcasts are not expired at `at` (the push service bounds what every node caches). */
  countLive (at: number): Promise<number>
}
