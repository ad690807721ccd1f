// The cluster's node registry: each broker node writes its record with a TTL and refreshes it on every
// heartbeat; a node whose record expired is dead. Members stay listed until a survivor has cleaned up after
// them (`forget`). Implementations: memory-node-registry.ts, redis-node-registry.ts; one contract suite.

/** A node's traffic counters, cumulative since it started (spoolDepth is current); the dashboard derives rates. */
export interface NodeTraffic {
  /** Uplinks accepted from devices. */
  readonly uplinks: number
  /** Downlinks written to devices' connections (pushes and broadcasts). */
  readonly downlinks: number
  /** Uplinks acknowledged by Kafka. */
  readonly kafkaRecords: number
  /** Uplinks in the spool not yet in Kafka. */
  readonly spoolDepth: number
}

export interface NodeRecord {
  readonly nodeId: string
  readonly mqtt: string
  readonly ws: string
  readonly http: string
  /** Live MQTT sessions on the node. */
  readonly connections: number
  readonly weight: number
  readonly draining: boolean
  readonly startedAt: number
  readonly heartbeatAt: number
  /** Absent from nodes that do not report it. */
  readonly traffic?: NodeTraffic
}

export interface NodeRegistry {
  /** Writes the node's record, live for ttlMs. */
  heartbeat (record: NodeRecord, ttlMs: number): Promise<void>
  /** Records of live nodes, ordered by node id. */
  list (): Promise<NodeRecord[]>
  get (nodeId: string): Promise<NodeRecord | undefined>
  /** Nodes that were registered and whose record expired. */
  dead (): Promise<string[]>
  /** Drops a node from the member list (after its cleanup, or on a graceful stop). */
  forget (nodeId: string): Promise<void>
  /** An operator's drain order, kept until cleared; the node reads it on its heartbeat. */
  setDrain (nodeId: string, draining: boolean): Promise<void>
  drainRequested (nodeId: string): Promise<boolean>
}
