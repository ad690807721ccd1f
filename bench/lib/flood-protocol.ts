// Messages between bench/flood.ts and its load generator processes (bench/lib/flood-worker.ts).

export type FloodParentMessage =
  | {
    readonly type: 'connect'
    /** pub: raw clients that publish QoS 0 as fast as TCP takes it; sub: raw clients that count what they receive. */
    readonly role: 'pub' | 'sub'
    readonly host: string
    readonly port: number
    readonly clients: number
    readonly idPrefix: string
    /** pub: the topic, with {id} replaced by the client id; sub: the filter. */
    readonly topic: string
    readonly payloadBytes: number
  }
  | { readonly type: 'go' }
  | { readonly type: 'stop' }

export type FloodWorkerMessage =
  | { readonly type: 'ready', readonly connected: number, readonly refused: number }
  /** Cumulative: messages written to the sockets (pub) or PUBLISH packets received (sub). */
  | { readonly type: 'count', readonly at: number, readonly count: number }
  | { readonly type: 'failed', readonly message: string }
