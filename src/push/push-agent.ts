import type { Client } from 'aedes'
import type { Logger } from 'pino'
import { DIRECT_BROKER_ID_SUFFIX, type BrokerNode } from '../broker/create-broker-node.ts'
import type { HistoryEntry, HistoryStore } from '../stores/history-store.ts'
import type { ReceiptCounts, ReceiptStore } from '../stores/receipt-store.ts'
import { downlinkPayload, type BroadcastDelivery, type DeliveryChannel, type TargetedDelivery } from './delivery-channel.ts'

// The broker node's side of push: writes downlinks to its local clients and moves their receipts.
// - targeted deliveries (from the delivery channel): written to the device's client on devices/{id}/down; the
//   receipt becomes sent once written (delivered at once for QoS 0);
// - PUBACK: delivered, and the device's delivered mark goes up;
// - the device's {"id": n} on devices/{id}/ack: acked;
// - a device that connects gets the history entries above its delivered mark whose receipt is still queued or
//   sent and whose ttl has not passed; those past their ttl become expired;
// - broadcasts: written to every local client subscribed to the topic, counted in memory, counts flushed to the
//   receipt store every flushMs.

export interface PushAgentOptions {
  readonly nodeId: string
  readonly logger: Logger
  readonly history: HistoryStore
  readonly receipts: ReceiptStore
  readonly channel: DeliveryChannel
  readonly flushMs?: number
  readonly now?: () => number
}

export interface PushAgent {
  start (broker: BrokerNode): Promise<void>
  /** For the broker's onPuback hook. */
  onPuback (client: Client, messageId: number): void
  /** For the broker's onDeviceAck hook. */
  onDeviceAck (deviceId: string, payload: Buffer): void
  close (): Promise<void>
}

type InFlight =
  | { readonly kind: 'device', readonly deviceId: string, readonly pushId: string, readonly id: number }
  | { readonly kind: 'broadcast', readonly pushId: string }

// aedes keeps these off its type declarations.
interface ClientInternals {
  _nextId: number
  connackSent: boolean
  subscriptions: Record<string, { qos: number } | undefined>
  deliverQoS (packet: object, cb: () => void): void
}

const CATCH_UP_LIMIT = 1000
/**
 * The delivered mark is a high-water mark: a PUBACK for id n can come before the one for n - 1, and a device that
 * drops then leaves n - 1 below the mark. Catch-up looks this far below the mark too (receipts decide what is sent).
 */
const CATCH_UP_BELOW_MARK = 100

export function createPushAgent (opts: PushAgentOptions): PushAgent {
  const { history, receipts, logger } = opts
  const now = opts.now ?? Date.now
  const inFlight = new WeakMap<Client, Map<number, InFlight>>()
  const pending = new Map<string, Partial<ReceiptCounts>>()
  const brokerId = `${opts.nodeId}${DIRECT_BROKER_ID_SUFFIX}`
  let counter = 0
  let broker: BrokerNode | undefined
  let flushTimer: NodeJS.Timeout | undefined
  let flushing: Promise<void> | undefined
  const fail = (what: string) => (err: Error): void => {
    logger.warn({ event: 'push_agent_error', what, err: err.message }, 'push receipt update failed')
  }

  const count = (pushId: string, state: keyof ReceiptCounts, n: number): void => {
    let c = pending.get(pushId)
    if (c === undefined) pending.set(pushId, c = {})
    c[state] = (c[state] ?? 0) + n
  }

  /**
   * Writes one downlink to the client. The packet id is chosen here, as aedes would choose it, so the PUBACK
   * can be matched. Resolves the QoS it went out with once written.
   */
  function write (client: Client, topic: string, payload: Buffer, qos: 0 | 1, tag: InFlight): Promise<0 | 1> {
    const c = client as unknown as ClientInternals
    const sub = c.subscriptions[topic]
    // aedes lowers the QoS to the subscription's: do it first, so no PUBACK is awaited that never comes.
    const effective: 0 | 1 = sub !== undefined && sub.qos < qos ? 0 : qos
    let messageId: number | undefined
    if (effective === 1) {
      messageId = c._nextId
      c._nextId = c._nextId >= 65535 ? 1 : c._nextId + 1
      let m = inFlight.get(client)
      if (m === undefined) inFlight.set(client, m = new Map())
      m.set(messageId, tag)
    }
    const packet = { cmd: 'publish', topic, payload, qos: effective, retain: false, dup: false, brokerId, brokerCounter: ++counter, messageId }
    return new Promise((resolve) => c.deliverQoS(packet, () => resolve(effective)))
  }

  async function deliverEntry (client: Client, deviceId: string, entry: HistoryEntry): Promise<void> {
    const at = now()
    if (entry.expiresAt <= at) {
      await receipts.transition(entry.pushId, deviceId, 'expired', at)
      return
    }
    const payload = downlinkPayload(entry.id, entry.pushId, entry.sentAt, entry.data)
    const qos = await write(client, `devices/${deviceId}/down`, payload, entry.qos, { kind: 'device', deviceId, pushId: entry.pushId, id: entry.id })
    if (qos === 0) {
      await receipts.transition(entry.pushId, deviceId, 'delivered', now())
      await history.markDelivered(deviceId, entry.id)
    } else {
      await receipts.transition(entry.pushId, deviceId, 'sent', now())
    }
  }

  function ready (deviceId: string): Client | undefined {
    const client = broker?.localClient(deviceId)
    // Before CONNACK the client is left to the catch-up that runs when it is ready.
    return client !== undefined && (client as unknown as ClientInternals).connackSent ? client : undefined
  }

  function deliver (batch: readonly TargetedDelivery[]): void {
    for (const { deviceId, entry } of batch) {
      const client = ready(deviceId)
      if (client === undefined) continue
      deliverEntry(client, deviceId, entry).catch(fail('deliver'))
    }
  }

  async function catchUp (client: Client): Promise<void> {
    const deviceId = client.id
    const entries = await history.undelivered(deviceId, CATCH_UP_BELOW_MARK, CATCH_UP_LIMIT)
    for (const entry of entries) {
      if (client.closed) return
      const receipt = await receipts.getReceipt(entry.pushId, deviceId)
      if (receipt === undefined || (receipt.state !== 'queued' && receipt.state !== 'sent')) continue
      await deliverEntry(client, deviceId, entry)
    }
  }

  function broadcast (order: BroadcastDelivery): void {
    const b = broker
    if (b === undefined) return
    const payload = downlinkPayload(order.pushId, order.pushId, order.sentAt, order.data)
    for (const client of b.liveClients()) {
      const c = client as unknown as ClientInternals
      if (!c.connackSent || c.subscriptions[order.topic] === undefined) continue
      write(client, order.topic, payload, order.qos, { kind: 'broadcast', pushId: order.pushId }).then((qos) => {
        count(order.pushId, qos === 0 ? 'delivered' : 'sent', 1)
      }, fail('broadcast'))
    }
  }

  async function flush (): Promise<void> {
    const batch = [...pending.entries()]
    pending.clear()
    for (const [pushId, delta] of batch) await receipts.addCounts(pushId, delta).catch(fail('flush counts'))
  }

  const onClientReady = (client: Client): void => { catchUp(client).catch(fail('catch-up')) }

  return {
    async start (b) {
      broker = b
      b.aedes.on('clientReady', onClientReady)
      await opts.channel.listen(opts.nodeId, { deliver, broadcast })
      flushTimer = setInterval(() => { flushing ??= flush().finally(() => { flushing = undefined }) }, opts.flushMs ?? 500)
    },
    onPuback (client, messageId) {
      const m = inFlight.get(client)
      const tag = m?.get(messageId)
      if (m === undefined || tag === undefined) return
      m.delete(messageId)
      if (tag.kind === 'broadcast') {
        count(tag.pushId, 'sent', -1)
        count(tag.pushId, 'delivered', 1)
        return
      }
      receipts.transition(tag.pushId, tag.deviceId, 'delivered', now())
        .then(() => history.markDelivered(tag.deviceId, tag.id))
        .catch(fail('puback'))
    },
    onDeviceAck (deviceId, payload) {
      let id: unknown
      try {
        id = (JSON.parse(payload.toString('utf8')) as { id?: unknown }).id
      } catch {
        return
      }
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return
      const n = id
      history.get(deviceId, n).then(async (entry) => {
        if (entry === undefined) return
        await receipts.transition(entry.pushId, deviceId, 'acked', now())
        await history.markDelivered(deviceId, n)
      }).catch(fail('ack'))
    },
    async close () {
      broker?.aedes.off('clientReady', onClientReady)
      if (flushTimer !== undefined) clearInterval(flushTimer)
      await flushing
      await flush()
      await opts.channel.close()
    }
  }
}
