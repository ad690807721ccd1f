import type { LiveBroadcast } from '../stores/broadcast-store.ts'
import { downlinkPayload } from './delivery-channel.ts'
import { publishFrame, type PublishFrame } from './publish-frame.ts'

// A node's cache of the group and broadcast pushes still within their ttl, by topic, fed by the broadcast orders
// it receives and loaded from the BroadcastStore at start. It lets a subscribe find the broadcasts a device may
// have missed without asking Redis when none is live for its topics (the common case: connects cost nothing more).

export interface CachedBroadcast {
  readonly broadcast: LiveBroadcast
  /** The PUBLISH serialized once per QoS, for every catch-up write. */
  readonly frames: { readonly 0: PublishFrame, readonly 1: PublishFrame }
}

export interface LiveBroadcasts {
  add (broadcast: LiveBroadcast): CachedBroadcast
  /** Whether the node knows this push (received its order or loaded it). */
  has (pushId: string, topic: string): boolean
  /** The live broadcasts on `topic` at `at` (expired ones are dropped). */
  on (topic: string, at: number): CachedBroadcast[]
  /** Whether any broadcast is cached at all (a cheap test before looking at a client's subscriptions). */
  readonly empty: boolean
}

export function createLiveBroadcasts (): LiveBroadcasts {
  const byTopic = new Map<string, Map<string, CachedBroadcast>>()
  return {
    add (broadcast) {
      let m = byTopic.get(broadcast.topic)
      if (m === undefined) byTopic.set(broadcast.topic, m = new Map())
      const known = m.get(broadcast.pushId)
      if (known !== undefined) return known
      const payload = downlinkPayload(broadcast.pushId, broadcast.pushId, broadcast.sentAt, broadcast.data)
      const cached = { broadcast, frames: { 0: publishFrame(broadcast.topic, payload, 0), 1: publishFrame(broadcast.topic, payload, 1) } }
      m.set(broadcast.pushId, cached)
      return cached
    },
    has (pushId, topic) {
      return byTopic.get(topic)?.has(pushId) === true
    },
    on (topic, at) {
      const m = byTopic.get(topic)
      if (m === undefined) return []
      for (const [id, c] of m) if (c.broadcast.expiresAt <= at) m.delete(id)
      if (m.size === 0) byTopic.delete(topic)
      return [...m.values()]
    },
    get empty () { return byTopic.size === 0 }
  }
}
