// Messages between broadcast-load.ts (the parent) and broadcast-worker.ts (a forked process holding many
// subscribed MQTT connections).
//
//   parent                              worker
//   { type: 'job', job }           ->   connects every client (raw TCP + mqtt-packet), subscribes its topics
//                                  <-   { type: 'ready', connected, failed, samples, byTopic }
//   { type: 'count', key }         ->   (any time) how many clients received the message tagged `key`
//                                  <-   { type: 'count', key, received }
//   { type: 'collect', key, topic } ->  receive times of `key` (and forgets them), the connections closed so far,
//                                  <-   { type: 'collected', key, atMs, dropped, dropReasons, misses }
//                                       and the clients subscribed to `topic` (all when none) that did not get it
//   { type: 'release' }            ->   destroys every socket, exits
//
// A downlink's tag is the "pushId" field of its JSON payload (Pushline's downlink shape; the Mosquitto
// reference publishes the same shape). Times are process.hrtime.bigint() (CLOCK_MONOTONIC, one clock for every
// process of this host), sent as numbers of ms.

export interface BroadcastClient {
  readonly clientId: string
  readonly username?: string
  readonly password?: string
  /** Broker port this client connects to (one per node). */
  readonly port: number
  /** Topic filters to subscribe to, QoS 1. */
  readonly topics: readonly string[]
}

export interface BroadcastJob {
  readonly host: string
  /** Source address of this worker's connections (127.0.0.x), so ports do not run out on one address. */
  readonly localAddress: string
  readonly clients: readonly BroadcastClient[]
  /** Connects in flight at once. */
  readonly concurrency: number
  readonly keepaliveSeconds: number
  /** Publish {"id": <the downlink's id>} on devices/{clientId}/ack for every downlink received (on Mosquitto: to no subscriber, for equal work). */
  readonly ack: boolean
  readonly connectTimeoutMs: number
  readonly maxLifetimeMs: number
}

export type BroadcastParentMessage =
  | { readonly type: 'job', readonly job: BroadcastJob }
  | { readonly type: 'count', readonly key: string }
  | { readonly type: 'collect', readonly key: string, readonly topic?: string }
  | { readonly type: 'release' }

export type BroadcastWorkerMessage =
  | { readonly type: 'ready', readonly connected: number, readonly failed: number, readonly samples: readonly string[], readonly byTopic: Readonly<Record<string, number>> }
  | { readonly type: 'count', readonly key: string, readonly received: number }
  | { readonly type: 'collected', readonly key: string, readonly atMs: readonly number[], readonly dropped: number, readonly dropReasons: Readonly<Record<string, number>>, readonly misses: Misses }
  | { readonly type: 'failed', readonly message: string }

/** Subscribers of a push's topic that did not receive it, split by whether their connection was still open. */
export interface Misses {
  /** Connected (and subscribed) all along, and never received it: a loss. */
  readonly connected: number
  /** Their connection had closed (before or after the push was sent). */
  readonly dropped: number
  /** A few of each, "clientId" or "clientId (closed <why> at <monotonic ms>)". */
  readonly samples: readonly string[]
}
