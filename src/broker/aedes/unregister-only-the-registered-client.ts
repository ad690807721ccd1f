// aedes 1.2 unregisters a closing client by its id alone. When a client's close finishes (after its unsubscribes,
// which take a while under load), it checks that some client holds its id and calls broker.unregisterClient(itself),
// whose deleteClient(id) drops whatever the map holds under that id. If a newer connection with the same id
// registered meanwhile (registerClient found the old one already closed and registered the new one at once), the
// newer one loses its map entry: it stays open and connected, but aedes no longer knows it, so a later takeover on
// this node does not close it, and its own close never emits clientDisconnect (the cluster member then meets a live
// connection that aedes does not hold, docs/cluster.md, "Takeover").
// While unregisterClient runs for a client that no longer holds its id, deleteClient still uncounts it (each
// registration counted once, each departure once) and puts the holder's entry back before anything can see the gap.
// Touches: aedes.unregisterClient and aedes.deleteClient (wrapped on the broker object). Upstream lacks an identity
// check before unregistering (client.js, the end of close).

import type { Aedes, Client } from 'aedes'
import { brokerInternals } from './internals.ts'

export function unregisterOnlyTheRegisteredClient (aedes: Aedes): void {
  const broker = brokerInternals(aedes)
  const unregister = broker.unregisterClient.bind(aedes)
  const remove = broker.deleteClient.bind(aedes)
  let leaving: Client | undefined
  broker.deleteClient = (clientId) => {
    const holder = broker.clients[clientId]
    remove(clientId)
    // deleteClient is synchronous and unregisterClient announces the departure only after it: nothing sees the gap.
    if (leaving !== undefined && leaving.id === clientId && holder !== undefined && holder !== leaving) broker.clients[clientId] = holder
  }
  broker.unregisterClient = (client) => {
    leaving = client
    try {
      unregister(client)
    } finally {
      leaving = undefined
    }
  }
}
