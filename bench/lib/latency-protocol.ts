// IPC messages between bench/cross-node-latency.ts and its forked load generators (latency-worker.ts).

export type LatencyParentMessage =
  | { readonly type: 'subscribe', readonly host: string, readonly port: number, readonly topics: readonly string[], readonly qos: 0 | 1, readonly idPrefix: string }
  | { readonly type: 'connect-publisher', readonly host: string, readonly port: number, readonly idPrefix: string }
  | { readonly type: 'publish', readonly phase: number, readonly rate: number, readonly seconds: number, readonly topics: readonly string[], readonly qos: 0 | 1 }
  | { readonly type: 'collect', readonly phase: number }
  | { readonly type: 'churn', readonly host: string, readonly ports: readonly number[], readonly clientIds: readonly string[], readonly seconds: number, readonly finalEven: boolean }
  | { readonly type: 'close' }

export type LatencyWorkerMessage =
  | { readonly type: 'started' }
  | { readonly type: 'ready' }
  | { readonly type: 'published', readonly sent: number, readonly errors: number, readonly lateMs: number }
  | { readonly type: 'samples', readonly latenciesMs: number[] }
  | { readonly type: 'churned', readonly connects: number, readonly failures: number, readonly finalConnected: number, readonly seconds: number }
  | { readonly type: 'closed' }
  | { readonly type: 'failed', readonly message: string }
