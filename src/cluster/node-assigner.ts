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
//
// The assigner works from a view of the node records (and, for least-connections, of the pending counts) that it
// reads at most every viewMaxAgeMs: records change on heartbeats, not per token, and reading them per token cost
// several Redis round trips. Between two reads, least-connections adds its own assignments to the view; those of other
// API processes show at the next read. A view with no candidate is read again at once, so the first node to come
// up is seen without waiting.
// For the same reason least-connections does not write its assignments to the shared pending counts one by one: it
// adds them up per node and sends the sums with its next read (one step of the counter store: the sums are counted,
// then every count is read), or at most viewMaxAgeMs after the first of them when no read comes. Other processes read
// at most every viewMaxAgeMs too, so they would not have seen the assignments much sooner.

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

export interface ClusterAssignerOptions {
  readonly registry: NodeRegistry
  readonly counters: CounterStore
  readonly strategy: AssignmentStrategy
  /** How long a sent device counts against its node before its connection shows in the node's record. */
  readonly pendingWindowMs?: number
  /** The longest the assigner uses one read of the node records (a fraction of the heartbeat period). */
  readonly viewMaxAgeMs?: number
  readonly random?: () => number
  readonly now?: () => number
}

interface View {
  readonly candidates: readonly NodeRecord[]
  /** least-connections: devices sent to each candidate and not yet in its record; this process adds its own. */
  readonly pending: number[]
  readonly readAt: number
}

export function createClusterAssigner (opts: ClusterAssignerOptions): NodeAssigner {
  const window = opts.pendingWindowMs ?? 30_000
  const maxAge = opts.viewMaxAgeMs ?? 250
  const random = opts.random ?? Math.random
  const now = opts.now ?? Date.now
  const pendingKey = (nodeId: string): string => `assigned:${nodeId}`
  let view: View | undefined
  let reading: Promise<View> | undefined
  /** least-connections: this process's assignments per node not yet added to the shared counts. */
  let unsent = new Map<string, number>()
  let sendTimer: NodeJS.Timeout | undefined

  /** Sends the unsent sums with the peeks, in one step; on failure the sums stay unsent for the next try. */
  async function sendAndPeek (peeks: readonly string[]): Promise<number[]> {
    const sums = unsent
    unsent = new Map()
    clearTimeout(sendTimer)
    sendTimer = undefined
    const hits = [...sums].map(([nodeId, by]) => ({ key: pendingKey(nodeId), windowMs: window, limit: Number.MAX_SAFE_INTEGER, by }))
    try {
      return (await opts.counters.hitAndPeek(hits, peeks)).peeks.map((p) => p.count)
    } catch (err) {
      for (const [nodeId, by] of sums) unsent.set(nodeId, (unsent.get(nodeId) ?? 0) + by)
      throw err
    }
  }

  function sendLater (): void {
    sendTimer ??= setTimeout(() => {
      sendTimer = undefined
      // A failure keeps the sums for the next read, which reports it.
      sendAndPeek([]).catch(() => {})
    }, maxAge).unref()
  }

  async function read (): Promise<View> {
    const readAt = now()
    const candidates = (await opts.registry.list()).filter((n) => !n.draining && n.weight > 0)
    const pending = opts.strategy === 'least-connections' && candidates.length > 0
      ? await sendAndPeek(candidates.map((n) => pendingKey(n.nodeId)))
      : candidates.map(() => 0)
    return { candidates, pending, readAt }
  }

  /** The current view; concurrent callers share one read. */
  async function current (): Promise<View> {
    if (view !== undefined && view.candidates.length > 0 && now() - view.readAt < maxAge) return view
    reading ??= read().then((v) => { view = v; return v }).finally(() => { reading = undefined })
    return await reading
  }

  return {
    async assign (deviceId) {
      const { candidates, pending } = await current()
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
          let best = 0
          let bestLoad = Infinity
          candidates.forEach((n, i) => {
            // Load per unit of weight; ties go to a random node so concurrent API processes spread out.
            const load = (n.connections + (pending[i] as number)) / n.weight + random() * 1e-6
            if (load < bestLoad) { best = i; bestLoad = load }
          })
          const chosen = candidates[best] as NodeRecord
          pending[best] = (pending[best] as number) + 1
          unsent.set(chosen.nodeId, (unsent.get(chosen.nodeId) ?? 0) + 1)
          sendLater()
          return address(chosen)
        }
      }
    }
  }
}
