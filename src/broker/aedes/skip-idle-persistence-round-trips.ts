import { sessionPersistence } from './internals.ts'
import { emptyQueueStream } from './skip-empty-queue-pipeline.ts'

// Round trips aedes 1.2 makes to its persistence on every CONNECT that can never find anything
// (bench/connect-rate.ts counted 16 Redis commands per connect; the broker is CPU-bound on them):
// - storeWill calls delWill(client) for a live client, whose brokerId is never set, so it removes
//   `will:undefined:<id>`, a key nothing writes (LREM, GET, DEL for nothing). Wills of dead brokers are deleted
//   with their real brokerId, which still goes through.
// - emptyQueue reads the stored queue of a clean session only to throw every entry away
//   (emptyQueueFilter clears them for clean clients), and a clean session's queue was deleted with its
//   subscriptions anyway (LRANGE for nothing). Its stream is marked, so that aedes's pipeline over it is skipped too
//   (skip-empty-queue-pipeline.ts).
// Touches: persistence.delWill and persistence.outgoingStream (wrapped). Upstream lacks a way to skip either.

export function skipIdleRoundTrips<P extends object> (persistence: P): P {
  const store = sessionPersistence(persistence)
  const delWill = store.delWill.bind(persistence)
  const outgoingStream = store.outgoingStream.bind(persistence)
  store.delWill = async (client) => client.brokerId === undefined ? null : await delWill(client)
  store.outgoingStream = (client) => client.clean === true ? emptyQueueStream() : outgoingStream(client)
  return persistence
}
