// [MQTT-3.1.2-6] A CleanSession=1 connect discards the previous session, and with it the QoS 1 messages queued
// for it while it was offline. aedes asks its persistence to cleanSubscriptions() at such a connect. The Redis
// persistence deletes the session's queue with its last subscription; the in-memory one (embedded mode) removes
// only the subscriptions, and a later CleanSession=0 connect would get the stale queue: an old command delivered
// long after it was cancelled. This adds the missing half to the in-memory persistence.

// Touches: persistence.cleanSubscriptions (wrapped), outgoingStream and outgoingClearMessageId (called).

import { sessionPersistence } from './internals.ts'

/** Makes cleanSubscriptions() also empty the session's queue of outgoing messages. Wrap the bare persistence. */
export function discardQueueWithSession<P extends object> (persistence: P): P {
  const store = sessionPersistence(persistence)
  const cleanSubscriptions = store.cleanSubscriptions.bind(persistence)
  const outgoingStream = store.outgoingStream.bind(persistence)
  const outgoingClearMessageId = store.outgoingClearMessageId.bind(persistence)
  store.cleanSubscriptions = async (client) => {
    await cleanSubscriptions(client)
    // The stream is a copy of the queue. Queued packets that were never sent have no message id: each clear
    // removes the first packet with the id it is given, so one clear per packet empties the copy's worth.
    for await (const packet of outgoingStream({ id: client.id })) await outgoingClearMessageId({ id: client.id }, packet)
  }
  return persistence
}
