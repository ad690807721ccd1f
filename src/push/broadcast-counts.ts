import type { ReceiptStore } from '../stores/receipt-store.ts'

// The counts of group and broadcast pushes (count-only: no receipt per device) a broker node collects in memory,
// deduplicated per node, and adds to the receipt store at each flush: one call per push, not per device.
// An application ack settles with the flush that carries it, so the broker can hold its PUBACK until the ack is in
// the store (downlink-acks.ts): a node killed between an ack and its flush loses no acknowledged ack.

const MAX_PENDING_ACK_PUSHES = 1000

export interface BroadcastCounts {
  /** The device was written the push at QoS 1. */
  sent (pushId: string, deviceId: string): void
  /** The device got the push (its PUBACK, or a QoS 0 write). */
  got (pushId: string, deviceId: string): void
  /**
   * The device's application ack of the push: resolves once a flush has added it to the store, rejects when that
   * flush failed. An ack naming one push too many between two flushes is dropped and resolves at once: live group
   * and broadcast pushes are as many at most (PUSHLINE_PUSH_MAX_LIVE_BROADCASTS' default), so only acks of unknown
   * or long-gone pushes get there, and refusing them would make any device able to close the others' connections.
   */
  acked (pushId: string, deviceId: string): Promise<void>
  flush (): Promise<void>
}

export function createBroadcastCounts (deps: {
  readonly receipts: ReceiptStore
  readonly fail: (what: string) => (err: Error) => void
}): BroadcastCounts {
  const { receipts, fail } = deps
  /** Not yet flushed, by push id: devices written at QoS 1, devices that got it. */
  const pendingSent = new Map<string, Set<string>>()
  const pendingGot = new Map<string, Set<string>>()
  /** Application acks not yet flushed, by push id. */
  const pendingAcks = new Map<string, Set<string>>()
  let ackBatch = newAckBatch()
  const note = (pending: Map<string, Set<string>>, pushId: string): Set<string> => {
    let ids = pending.get(pushId)
    if (ids === undefined) pending.set(pushId, ids = new Set())
    return ids
  }
  const noteGot = (pushId: string, deviceId: string): void => {
    note(pendingGot, pushId).add(deviceId)
    // Not flushed yet: the device need not pass through sent at all.
    pendingSent.get(pushId)?.delete(deviceId)
  }
  return {
    sent (pushId, deviceId) { note(pendingSent, pushId).add(deviceId) },
    got: noteGot,
    acked (pushId, deviceId) {
      if (!pendingAcks.has(pushId) && pendingAcks.size >= MAX_PENDING_ACK_PUSHES) return Promise.resolve()
      note(pendingAcks, pushId).add(deviceId)
      return ackBatch.flushed
    },
    async flush () {
      const pushes = [...new Set([...pendingSent.keys(), ...pendingGot.keys()])]
      const batch = pushes.map((pushId) => [pushId, [...pendingSent.get(pushId) ?? []], [...pendingGot.get(pushId) ?? []]] as const)
      pendingSent.clear()
      pendingGot.clear()
      const acks = [...pendingAcks.entries()]
      pendingAcks.clear()
      const acksDone = ackBatch
      ackBatch = newAckBatch()
      let failed: Error | undefined
      const undelivered = new Map<string, Error>()
      // Deliveries first: a PUBACK's delivered is in place before the ack that moves it to acked.
      for (const [pushId, sent, got] of batch) {
        await receipts.countDeliveries(pushId, sent, got).catch((err: Error) => {
          fail('flush counts')(err)
          undelivered.set(pushId, err)
          // Kept for the next flush (a device counts once, however often it is sent): nobody would report these again.
          for (const id of sent) if (!pendingGot.get(pushId)?.has(id)) note(pendingSent, pushId).add(id)
          for (const id of got) noteGot(pushId, id)
        })
      }
      for (const [pushId, ids] of acks) {
        // The store counts an ack only for a device it has as sent or got: these would be dropped, not counted.
        const skipped = undelivered.get(pushId)
        if (skipped !== undefined) {
          failed = skipped
          continue
        }
        await receipts.countAcks(pushId, [...ids]).catch((err: Error) => {
          fail('flush acks')(err)
          failed = err
        })
      }
      // One outcome for the whole batch: an ack refused although its push's script ran is sent again and counts once.
      acksDone.settle(failed)
    }
  }
}

interface AckBatch {
  readonly flushed: Promise<void>
  settle (err: Error | undefined): void
}

function newAckBatch (): AckBatch {
  let settle: (err: Error | undefined) => void = () => {}
  const flushed = new Promise<void>((resolve, reject) => { settle = (err) => { if (err === undefined) resolve(); else reject(err) } })
  // A batch nobody waits for (no acks) may fail without an unhandled rejection; each waiter still gets it.
  flushed.catch(() => {})
  return { flushed, settle }
}
