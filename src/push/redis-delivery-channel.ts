import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { BroadcastDelivery, DeliveryChannel, DeliveryHandlers, TargetedDelivery } from './delivery-channel.ts'

// {prefix}down:{nodeId}  one channel per node: JSON arrays of targeted deliveries
// {prefix}down-all       every node: one broadcast order per group or broadcast push

export function createRedisDeliveryChannel (opts: { publisher: Redis, subscriber?: Redis, prefix: string, logger: Logger }): DeliveryChannel {
  const { publisher, subscriber, prefix, logger } = opts
  const allChannel = `${prefix}down-all`
  let own: string | undefined
  let handlers: DeliveryHandlers | undefined
  // ioredis subscribes again by itself after a reconnect; whatever was published meanwhile is gone. It emits 'ready'
  // before it sends those SUBSCRIBEs: a PING sent after them answers once they are in force, and only then does a
  // resync read the stores, so an order is either in what it reads or arrives on the channel.
  const onReady = (): void => {
    process.nextTick(() => {
      const resync = (): void => { handlers?.resync?.() }
      subscriber?.ping().then(resync, resync)
    })
  }
  const onMessage = (channel: string, message: string): void => {
    if (handlers === undefined) return
    try {
      if (channel === own) handlers.deliver(JSON.parse(message) as TargetedDelivery[])
      else if (channel === allChannel) handlers.broadcast(JSON.parse(message) as BroadcastDelivery)
    } catch (err) {
      logger.warn({ event: 'bad_delivery_order', err: (err as Error).message }, 'ignored a malformed delivery order')
    }
  }
  return {
    async sendTo (nodeId, batch) {
      if (batch.length > 0) await publisher.publish(`${prefix}down:${nodeId}`, JSON.stringify(batch))
    },
    async broadcast (order) {
      await publisher.publish(allChannel, JSON.stringify(order))
    },
    async listen (nodeId, h) {
      if (subscriber === undefined) throw new Error('this process has no subscriber connection for deliveries')
      own = `${prefix}down:${nodeId}`
      handlers = h
      subscriber.on('message', onMessage)
      await subscriber.subscribe(own, allChannel)
      subscriber.on('ready', onReady)
    },
    async close () {
      handlers = undefined
      if (subscriber === undefined || own === undefined) return
      subscriber.off('message', onMessage)
      subscriber.off('ready', onReady)
      await subscriber.unsubscribe(own, allChannel).catch(() => {})
    }
  }
}
