import pino from 'pino'
import { createClusterMember, type ClusterMember, type PresenceEvent } from '../../src/cluster/cluster-member.ts'
import { createMemoryCounterStore } from '../../src/stores/memory-counter-store.ts'
import { createMemoryNodeRegistry } from '../../src/stores/memory-node-registry.ts'
import type { PresenceStore } from '../../src/stores/presence-store.ts'

/** A cluster member on `presence` that the test drives tick by tick (its own timer waits ten minutes). */
export function steppedClusterMember (nodeId: string, presence: PresenceStore, onPresence: (e: PresenceEvent) => void): ClusterMember {
  return createClusterMember({
    nodeId,
    logger: pino({ level: 'silent' }),
    registry: createMemoryNodeRegistry(),
    presence,
    heartbeatMs: 600_000,
    weight: 1,
    drainRate: 100,
    sessionExpiryMs: 0,
    counters: createMemoryCounterStore(),
    onPresence
  })
}
