import { connackSent } from '../broker/aedes/internals.ts'
import type { BroadcastStore } from '../stores/broadcast-store.ts'
import type { BroadcastDownlinks } from './broadcast-downlinks.ts'
import type { PushAgentContext } from './push-agent-context.ts'
import type { TargetedDownlinks } from './targeted-downlinks.ts'

// After the delivery channel's connection came back, orders published meanwhile never arrived: the broadcasts
// this node did not hear of go to its subscribers now, as an order would have, and every connected device gets
// its targeted downlinks still queued (docs/design.md: Redis drops a busy subscriber connection).

/** Connected devices caught up at once after a gap in the delivery channel. */
const RESYNC_CONCURRENCY = 64

/** Returns the resync to run after each gap in the delivery channel. */
export function createDeliveryResync (deps: {
  readonly context: Pick<PushAgentContext, 'broker' | 'logger' | 'now' | 'fail'>
  readonly broadcasts: BroadcastStore
  readonly broadcastDownlinks: Pick<BroadcastDownlinks, 'broadcast' | 'has'>
  readonly targeted: Pick<TargetedDownlinks, 'catchUp'>
}): () => Promise<void> {
  const { broker, logger, now, fail } = deps.context
  const { broadcastDownlinks, targeted } = deps
  return async function resync () {
    const missed = (await deps.broadcasts.live(now())).filter((kept) => !broadcastDownlinks.has(kept.pushId, kept.topic))
    for (const order of missed) broadcastDownlinks.broadcast(order)
    const clients = (broker()?.liveClients() ?? []).filter(connackSent)
    for (let i = 0; i < clients.length; i += RESYNC_CONCURRENCY) {
      await Promise.all(clients.slice(i, i + RESYNC_CONCURRENCY).map((c) => targeted.catchUp(c, 'gap').catch(fail('catch-up after a delivery gap'))))
    }
    logger.warn({ event: 'push_resync', broadcasts: missed.length, devices: clients.length }, 'delivery orders may have been lost: missed broadcasts written, connected devices caught up')
  }
}
