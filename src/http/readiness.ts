import type { ClusterStatus } from '../cluster/cluster-member.ts'
import type { ShipperStatus } from '../uplink/kafka-shipper.ts'
import type { ReadinessReport } from './routes/health.ts'

// GET /readyz of one process: what keeps it from taking devices and requests (closing, Redis or its pub/sub
// down, a failing heartbeat, draining), and what it reports without being unready (a full spool, Kafka away).

export interface ReadinessParts {
  readonly closing: () => boolean
  /** Cluster mode: the main Redis connection. */
  readonly redis?: { ping (): Promise<unknown> }
  /** Cluster mode, broker roles: the pub/sub transport. */
  readonly transport?: { subscriberReady (): boolean }
  /** Broker roles. */
  readonly member?: { status (): ClusterStatus }
  readonly spool?: { readonly full: boolean, readonly unshippedBytes: number }
  /** Broker roles with Kafka. */
  readonly shipper?: { status (): ShipperStatus }
  /** The receipts stream's shipper, when there is one. */
  readonly receiptShipper?: () => ShipperStatus | undefined
  /** The API thread of role all (src/api-thread/): the report of the broker thread of the same process. */
  readonly brokerThread?: () => Promise<ReadinessReport>
}

export function createReadiness (parts: ReadinessParts): () => Promise<ReadinessReport> {
  return async () => {
    const checks: Record<string, string> = {}
    const closing = parts.closing()
    let ready = !closing
    checks.process = closing ? 'closing' : 'ok'
    if (parts.transport !== undefined && !parts.transport.subscriberReady()) {
      checks.pubsub = 'subscriber connection down'
      ready = false
    }
    if (parts.member !== undefined) {
      const c = parts.member.status()
      checks.cluster = c.draining ? 'draining' : c.heartbeatOk ? 'ok' : `heartbeat failing: ${c.lastError ?? 'not yet'}`
      if (c.draining || !c.heartbeatOk) ready = false
    }
    if (parts.spool !== undefined) {
      // Reported, not a reason to be unready: in a Kafka outage every node's spool fills up, and refusing new
      // connections everywhere would also cut the devices off from their downlinks.
      checks.spool = parts.spool.full ? `full: ${parts.spool.unshippedBytes} bytes wait for Kafka, QoS 1 PUBACKs are held back` : 'ok'
    }
    if (parts.shipper !== undefined) {
      // Kafka away is no reason to refuse devices: their uplinks spool until it is back.
      const k = parts.shipper.status()
      checks.kafka = k.connected ? 'ok' : `unreachable, spooling ${k.lagRecords} uplinks: ${k.lastError ?? 'connecting'}`
    }
    const receiptShipper = parts.receiptShipper?.()
    if (receiptShipper !== undefined) {
      // Reported like the uplink bridge, never a reason to be unready.
      checks.receiptStream = receiptShipper.connected ? 'ok' : `Kafka unreachable, spooling ${receiptShipper.lagRecords} receipt records: ${receiptShipper.lastError ?? 'connecting'}`
    }
    if (parts.redis !== undefined) {
      try {
        await parts.redis.ping()
        checks.redis = 'ok'
      } catch (err) {
        checks.redis = (err as Error).message
        ready = false
      }
    }
    if (parts.brokerThread === undefined) return { ready, checks }
    let broker: ReadinessReport
    try {
      broker = await parts.brokerThread()
    } catch (err) {
      return { ready: false, checks: { ...checks, brokerThread: (err as Error).message } }
    }
    // Both threads check the process and Redis: a check that fails in either fails for the process.
    const merged: Record<string, string> = { ...broker.checks }
    for (const [name, value] of Object.entries(checks)) {
      if (merged[name] === undefined || value !== 'ok') merged[name] = value
    }
    return { ready: ready && broker.ready, checks: merged }
  }
}
