import type { Logger } from 'pino'
import type { BrokerNode } from '../broker/create-broker-node.ts'
import type { HistoryStore } from '../stores/history-store.ts'
import type { ReceiptStore } from '../stores/receipt-store.ts'
import type { PushMetrics } from './push-metrics.ts'

// What the push agent's parts share: the node's broker, the stores they move receipts in, the clock, the node's
// downlink metrics, and one way to log a receipt update that failed (the parts run from broker events, where nothing awaits them).

export interface PushAgentContext {
  /** The node's broker, once the agent has started. */
  readonly broker: () => BrokerNode | undefined
  readonly logger: Logger
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  readonly now: () => number
  /** Downlinks written and PUBACKed, by kind and QoS. */
  readonly metrics: Pick<PushMetrics, 'downlinks' | 'downlinksDelivered'> | undefined
  /** A catch handler logging that `what` failed, naming the push when known. */
  readonly fail: (what: string, context?: { traceId?: string, pushId: string }) => (err: Error) => void
}

export function createPushAgentContext (opts: {
  readonly broker: () => BrokerNode | undefined
  readonly logger: Logger
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  readonly now?: () => number
  readonly metrics?: Pick<PushMetrics, 'downlinks' | 'downlinksDelivered'>
}): PushAgentContext {
  const { logger } = opts
  return {
    broker: opts.broker,
    logger,
    history: opts.history,
    receipts: opts.receipts,
    now: opts.now ?? Date.now,
    metrics: opts.metrics,
    fail: (what, context) => (err) => {
      logger.warn({ event: 'push_agent_error', what, traceId: context?.traceId, pushId: context?.pushId, err: err.message }, 'push receipt update failed')
    }
  }
}
