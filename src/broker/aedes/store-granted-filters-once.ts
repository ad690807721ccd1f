import type { Client, Subscription } from 'aedes'
import { sessionPersistence } from './internals.ts'

// aedes 1.2 stores persistent (clean=false) subscriptions once per filter of a SUBSCRIBE, each time passing the
// packet's whole filter list (lib/handlers/subscribe.js, storeSubscriptions). Two defects follow:
// - With several filters, the N concurrent calls wait on the same broadcast key, only the last waiter is woken,
//   and the SUBACK never comes (docs/design.md: 11 of 13 multi-filter SUBSCRIBEs hung on Redis).
// - Filters the ACL refused are stored too, so the shared subscription trie would queue QoS 1 messages for them.
// The guard makes the N calls share one store of only the granted filters.
// Touches: persistence.addSubscriptions (wrapped). Upstream lacks one store call per SUBSCRIBE packet.

export function guardSubscriptions<P extends object> (persistence: P, granted: (client: Client, sub: Subscription) => boolean): P {
  const store = sessionPersistence(persistence)
  const add = store.addSubscriptions.bind(persistence)
  // Keyed by the packet's subscription array: every call for one SUBSCRIBE passes the same array.
  const pending = new WeakMap<Subscription[], Promise<unknown>>()
  store.addSubscriptions = (client, subs) => {
    let p = pending.get(subs)
    if (p === undefined) {
      const allowed = subs.filter((s) => granted(client, s))
      p = allowed.length === 0 ? Promise.resolve(client) : add(client, allowed)
      pending.set(subs, p)
    }
    return p
  }
  return persistence
}
