import { createHash } from 'node:crypto'
import type { AssignmentStrategy } from '../config/settings.ts'
import type { BrokerAddress, NodeAssigner } from '../registry/node-assigner.ts'
import { PushlineError } from '../shared/errors.ts'
import type { CounterStore } from '../stores/counter-store.ts'
import type { NodeRecord, NodeRegistry } from '../stores/node-registry.ts'

// Picks a broker node at token time. Draining and dead nodes are never picked.
// - least-connections: live sessions plus the devices sent to the node recently but not yet connected
//   (a node's session count only moves when devices arrive, so without the second term every token issued
//   between two heartbeats would go to the same node);
// - weighted: random, in proportion to each node's weight;
// - consistent-hash: rendezvous hashing on the device id, so removing a node moves only the devices it held;
// - round-robin: a cluster-wide counter over the nodes in id order.

export interface ClusterAssignerOptions {
  readonly registry: NodeRegistry
  readonly counters: CounterStore
  readonly strategy: AssignmentStrategy
  /** How long a sent device counts against its node before its connection shows in the node's record. */
  readonly pendingWindowMs?: number
  readonly random?: () => number
}

function address (n: NodeRecord): BrokerAddress {
  return { nodeId: n.nodeId, mqtt: n.mqtt, ws: n.ws, ...(n.mqtts !== undefined && { mqtts: n.mqtts }), ...(n.wss !== undefined && { wss: n.wss }) }
}

function hashScore (deviceId: string, nodeId: string): number {
  return createHash('sha256').update(deviceId).update('\0').update(nodeId).digest().readUInt32BE(0) / 0x1_0000_0000
}

/** Rendezvous hashing with weights: the node with the highest score for this device wins. */
export function rendezvous (deviceId: string, nodes: readonly NodeRecord[]): NodeRecord | undefined {
  let best: NodeRecord | undefined
  let bestScore = -Infinity
  for (const n of nodes) {
    // -weight / ln(u) keeps the choice proportional to weight and stable when other nodes come or go.
    const score = -n.weight / Math.log(Math.max(hashScore(deviceId, n.nodeId), Number.MIN_VALUE))
    if (score > bestScore) { best = n; bestScore = score }
  }
  return best
}

export function createClusterAssigner (opts: ClusterAssignerOptions): NodeAssigner {
  const window = opts.pendingWindowMs ?? 30_000
  const random = opts.random ?? Math.random
  const pendingKey = (nodeId: string): string => `assigned:${nodeId}`

  return {
    async assign (deviceId) {
      const candidates = (await opts.registry.list()).filter((n) => !n.draining && n.weight > 0)
      if (candidates.length === 0) throw new PushlineError('IOT_ERR_UNAVAILABLE', 'no broker node is available')
      switch (opts.strategy) {
        case 'consistent-hash':
          return address(rendezvous(deviceId, candidates) as NodeRecord)
        case 'weighted': {
          const total = candidates.reduce((s, n) => s + n.weight, 0)
          let r = random() * total
          for (const n of candidates) {
            r -= n.weight
            if (r < 0) return address(n)
          }
          return address(candidates[candidates.length - 1] as NodeRecord)
        }
        case 'round-robin': {
          const { count } = await opts.counters.hit('assign-round-robin', 365 * 24 * 3600_000)
          return address(candidates[(count - 1) % candidates.length] as NodeRecord)
        }
        case 'least-connections': {
          const pending = await Promise.all(candidates.map(async (n) => (await opts.counters.peek(pendingKey(n.nodeId))).count))
          let best = 0
          let bestLoad = Infinity
          candidates.forEach((n, i) => {
            // Load per unit of weight; ties go to a random node so concurrent API processes spread out.
            const load = (n.connections + (pending[i] as number)) / n.weight + random() * 1e-6
            if (load < bestLoad) { best = i; bestLoad = load }
          })
          const chosen = candidates[best] as NodeRecord
          await opts.counters.hit(pendingKey(chosen.nodeId), window)
          return address(chosen)
        }
      }
    }
  }
}
