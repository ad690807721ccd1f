// Messages between connect-load.ts (the parent) and connect-worker.ts (a forked load generator process).
//
//   parent                         worker
//   { type: 'job', job }      ->   builds every CONNECT packet up front
//                             <-   { type: 'ready' }
//   { type: 'go' }            ->   opens job.clients.length connections, at most job.concurrency in flight
//                             <-   { type: 'result', result }   (accepted connections stay open)
//   { type: 'release' }       ->   destroys every socket
//                             <-   { type: 'released', droppedAfterConnack }, then exits
//
// Times are process.hrtime.bigint() values: CLOCK_MONOTONIC, comparable between processes on one machine.

/** One MQTT client to connect. Without username and password the CONNECT carries no credentials. */
export interface ConnectCredentials {
  readonly clientId: string
  readonly username?: string
  readonly password?: string
}

export interface ConnectJob {
  readonly workerIndex: number
  readonly host: string
  readonly port: number
  /** Source address of the connections (any of 127.0.0.0/8), so more than one ephemeral port range is available. */
  readonly localAddress?: string
  readonly clients: readonly ConnectCredentials[]
  /** Connects in flight at once (TCP handshake + CONNECT + waiting for CONNACK). */
  readonly concurrency: number
  /** MQTT keepalive in seconds; the worker sends no PINGREQ, so keep it above the time connections are held. */
  readonly keepaliveSeconds: number
  readonly clean: boolean
  /** A connect without CONNACK after this long counts as a timeout. */
  readonly connectTimeoutMs: number
  /** The worker exits by itself after this long, whatever happens. */
  readonly maxLifetimeMs: number
}

/** How a batch of connects ended: per worker, summed over the workers, and per benchmark round. */
export interface ConnectCounts {
  readonly attempted: number
  /** CONNACK with return code 0. */
  readonly accepted: number
  /** CONNACKs with a non-zero return code, by code. */
  readonly refused: Readonly<Record<number, number>>
  /** Socket errors or closes before a CONNACK. */
  readonly errors: number
  readonly timeouts: number
  /** Up to five distinct error messages. */
  readonly errorSamples: readonly string[]
  /** Accepted connections the broker closed before the result was sent. */
  readonly droppedAfterConnack: number
}

export interface ConnectWorkerResult extends ConnectCounts {
  readonly workerIndex: number
  readonly firstConnectNs: bigint
  /** Last CONNACK with return code 0. */
  readonly lastConnackNs: bigint
  /** Last connect settled in any way (CONNACK, error or timeout). */
  readonly lastSettledNs: bigint
  /** connect() to CONNACK, in ms, for each accepted connect. */
  readonly latenciesMs: Float64Array
  /** CPU time of the worker process during the run, in µs. */
  readonly cpuUserUs: number
  readonly cpuSystemUs: number
}

export type ParentMessage =
  | { readonly type: 'job', readonly job: ConnectJob }
  | { readonly type: 'go' }
  | { readonly type: 'release' }

export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'result', readonly result: ConnectWorkerResult }
  | { readonly type: 'released', readonly droppedAfterConnack: number }
  | { readonly type: 'failed', readonly message: string }
