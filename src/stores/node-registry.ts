// The cluster's node registry: each broker node writes its record with a TTL and refreshes it on every
// heartbeat; a node whose record expired is dead. Members stay listed until a survivor has cleaned up after
// them (`forgetDead`), or until they leave (`forget`). A drain order outlives the record: a node that was only late
// (starved, paused) and comes back still drains (docs/cluster.md, Late nodes). Implementations: memory-node-registry.ts, redis-node-registry.ts; one contract suite.

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
  /** MQTT over TLS and WebSocket over TLS, when the node has a certificate. */
  readonly mqtts?: string
  readonly wss?: string
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
  /** Writes the node's record, live for ttlMs; resolves whether the record was still live (false: new or expired). */
  heartbeat (record: NodeRecord, ttlMs: number): Promise<boolean>
  /** Records of live nodes, ordered by node id. */
  list (): Promise<NodeRecord[]>
  get (nodeId: string): Promise<NodeRecord | undefined>
  /** Nodes that were registered and whose record expired. */
  dead (): Promise<string[]>
  /** A node's graceful stop: drops it from the member list with its record and drain order. */
  forget (nodeId: string): Promise<void>
  /**
   * After a survivor's cleanup: drops a dead node from the member list, only while its record is still expired (a
   * node that came back stays), and keeps its drain order. Resolves whether it dropped it.
   */
  forgetDead (nodeId: string): Promise<boolean>
  /** An operator's drain order, kept until cancelled or the node leaves; the node reads it on its heartbeat. */
  setDrain (nodeId: string, draining: boolean): Promise<void>
  drainRequested (nodeId: string): Promise<boolean>
}
