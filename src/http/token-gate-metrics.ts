import { Counter, Gauge, type Registry } from 'prom-client'

// The instruments of the bound on token requests in progress (src/shared/request-gate.ts).

export interface TokenGateMetrics {
  readonly inFlight: Gauge
  readonly queued: Gauge
  readonly refused: Counter
  readonly abandoned: Counter
}

export function registerTokenGateMetrics (registry: Registry): TokenGateMetrics {
  const registers = [registry]
  return {
    inFlight: new Gauge({ name: 'pushline_token_requests_in_flight', help: 'token requests this process is working on (at most PUSHLINE_TOKEN_CONCURRENCY)', registers }),
    queued: new Gauge({ name: 'pushline_token_requests_queued', help: 'token requests waiting for a slot (at most PUSHLINE_TOKEN_QUEUE)', registers }),
    refused: new Counter({ name: 'pushline_token_requests_busy_total', help: 'token requests refused with 503 IOT_ERR_BUSY: slots and queue were full', registers }),
    abandoned: new Counter({ name: 'pushline_token_requests_abandoned_total', help: 'token requests dropped from the queue without their work because the client closed its connection while they waited', registers })
  }
}
