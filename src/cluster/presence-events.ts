import type { Kafka, Producer } from 'kafkajs'
import type { Logger } from 'pino'
import { kafkajs } from '../kafka/kafkajs-module.ts'
import type { PresenceEvent } from './cluster-member.ts'

// Presence events to Kafka (docs/mqtt.md: iot.presence, key = device id, JSON value). They are batched from a
// bounded in-memory queue: presence is also kept exactly in Redis, so an event stream that falls behind during a
// long Kafka outage drops its oldest events, and every drop is counted and logged.

export interface PresenceEventsOptions {
  readonly kafka: Kafka
  readonly topic: string
  readonly logger: Logger
  readonly maxQueued?: number
  readonly flushMs?: number
  readonly onDropped?: (n: number) => void
  readonly onSent?: (n: number) => void
}

export interface PresenceEvents {
  publish (event: PresenceEvent): void
  /** Sends what is queued, for up to `ms`. */
  close (ms?: number): Promise<void>
}

export function createPresenceEvents (opts: PresenceEventsOptions): PresenceEvents {
  const maxQueued = opts.maxQueued ?? 100_000
  const { CompressionTypes, Partitioners } = kafkajs()
  const producer: Producer = opts.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 2 } })
  let queue: PresenceEvent[] = []
  let connected = false
  let sending = false
  let closed = false
  let backoffUntil = 0
  let droppedSinceLog = 0

  async function flush (): Promise<void> {
    if (sending || queue.length === 0 || Date.now() < backoffUntil) return
    sending = true
    const batch = queue.slice(0, 1000)
    try {
      if (!connected) { await producer.connect(); connected = true }
      await producer.send({
        topic: opts.topic,
        acks: -1,
        compression: CompressionTypes.GZIP,
        messages: batch.map((e) => ({
          key: e.deviceId,
          value: JSON.stringify({ event: e.event, nodeId: e.nodeId, epoch: e.epoch, at: e.at, ...(e.reason !== undefined && { reason: e.reason }) })
        }))
      })
      queue.splice(0, batch.length)
      opts.onSent?.(batch.length)
    } catch (err) {
      backoffUntil = Date.now() + 1000
      opts.logger.warn({ event: 'presence_events_failed', err: (err as Error).message, queued: queue.length }, 'presence events not sent to Kafka; retrying')
    } finally {
      sending = false
    }
  }

  const timer = setInterval(() => { flush().catch(() => {}) }, opts.flushMs ?? 100)
  timer.unref()

  return {
    publish (event) {
      if (closed) return
      queue.push(event)
      if (queue.length > maxQueued) {
        const n = queue.length - maxQueued
        queue = queue.slice(n)
        opts.onDropped?.(n)
        droppedSinceLog += n
        if (droppedSinceLog >= 1000 || droppedSinceLog === n) {
          opts.logger.error({ event: 'presence_events_dropped', dropped: droppedSinceLog }, 'presence event queue full: dropped the oldest events (presence in Redis stays exact)')
          droppedSinceLog = 0
        }
      }
    },
    async close (ms = 2000) {
      closed = true
      clearInterval(timer)
      const end = Date.now() + ms
      while (queue.length > 0 && Date.now() < end) {
        backoffUntil = 0
        await flush()
        if (queue.length > 0) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      if (queue.length > 0) opts.logger.error({ event: 'presence_events_lost_at_close', count: queue.length }, 'presence events not sent before close')
      await producer.disconnect().catch(() => {})
    }
  }
}
