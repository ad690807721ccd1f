import type { Client } from 'aedes'
import type { Logger } from 'pino'
import type { BrokerNode } from '../broker/create-broker-node.ts'
import type { BroadcastStore } from '../stores/broadcast-store.ts'
import type { HistoryStore } from '../stores/history-store.ts'
import type { ReceiptStore } from '../stores/receipt-store.ts'
import { createBroadcastCounts } from './broadcast-counts.ts'
import { createBroadcastDownlinks } from './broadcast-downlinks.ts'
import type { DeliveryChannel } from './delivery-channel.ts'
import { createDeliveryResync } from './delivery-resync.ts'
import { createDownlinkAcks } from './downlink-acks.ts'
import { createDownlinkWriter } from './downlink-writer.ts'
import { createInFlightDownlinks } from './in-flight-downlinks.ts'
import { createPushAgentContext } from './push-agent-context.ts'
import type { PushMetrics } from './push-metrics.ts'
import { createTargetedDownlinks } from './targeted-downlinks.ts'

// The broker node's side of push: writes downlinks to its local clients and moves their receipts. It composes
// targeted-downlinks.ts (delivery orders, catch-up at connect), broadcast-downlinks.ts (broadcast orders and their
// catch-up at subscribe), downlink-acks.ts (PUBACKs and application acks), delivery-resync.ts (after a gap in the
// delivery channel) and broadcast-counts.ts (counts of group and broadcast pushes, flushed every flushMs).

export interface PushAgentOptions {
  readonly nodeId: string
  /** Called for every downlink written to a connection. */
  readonly logger: Logger
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  /** The live broadcasts, loaded into the node's cache at start. */
  readonly broadcasts: BroadcastStore
  readonly channel: DeliveryChannel
  readonly flushMs?: number
  readonly now?: () => number
  /** Downlinks written and PUBACKed, by kind and QoS. */
  readonly metrics?: Pick<PushMetrics, 'downlinks' | 'downlinksDelivered'>
}

export interface PushAgent {
  start (broker: BrokerNode): Promise<void>
  /** For the broker's onPuback hook: true when the packet id was one of this agent's downlinks. */
  onPuback (client: Client, messageId: number): boolean
  /** For the broker's onDeviceAck hook: settles once the ack is recorded (downlink-acks.ts). */
  onDeviceAck (deviceId: string, payload: Buffer): Promise<void>
  close (): Promise<void>
}

export function createPushAgent (opts: PushAgentOptions): PushAgent {
  let broker: BrokerNode | undefined
  let flushTimer: NodeJS.Timeout | undefined
  let flushing: Promise<void> | undefined
  const context = createPushAgentContext({ ...opts, broker: () => broker })
  const { fail } = context
  const counts = createBroadcastCounts({ receipts: opts.receipts, fail })
  const inFlight = createInFlightDownlinks()
  const writer = createDownlinkWriter({ nodeId: opts.nodeId, context, inFlight, counts })
  const targeted = createTargetedDownlinks({ context, writer })
  const broadcastDownlinks = createBroadcastDownlinks({ context, writer, broadcasts: opts.broadcasts })
  const resync = createDeliveryResync({ context, broadcasts: opts.broadcasts, broadcastDownlinks, targeted })
  const acks = createDownlinkAcks({ context, inFlight, counts })
  const { onSubscribe } = broadcastDownlinks

  const onClientReady = (client: Client): void => {
    targeted.catchUp(client, 'connect').catch(fail('catch-up'))
    broadcastDownlinks.onClientReady(client)
  }

  return {
    async start (b) {
      broker = b
      b.aedes.on('clientReady', onClientReady)
      b.aedes.on('subscribe', onSubscribe)
      // Listen first, then load: a broadcast accepted in between is in one or the other (or both).
      await opts.channel.listen(opts.nodeId, {
        deliver: targeted.deliver,
        broadcast: broadcastDownlinks.broadcast,
        resync: () => { resync().catch(fail('resync after a delivery gap')) }
      })
      await broadcastDownlinks.loadLive()
      flushTimer = setInterval(() => { flushing ??= counts.flush().finally(() => { flushing = undefined }) }, opts.flushMs ?? 500)
    },
    onPuback: acks.onPuback,
    onDeviceAck: acks.onDeviceAck,
    async close () {
      broker?.aedes.off('clientReady', onClientReady)
      broker?.aedes.off('subscribe', onSubscribe)
      if (flushTimer !== undefined) clearInterval(flushTimer)
      await flushing
      await counts.flush()
      await opts.channel.close()
    }
  }
}
