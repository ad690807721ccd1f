import type { Redis } from 'ioredis'
import type { Logger } from 'pino'

// Redis replicates asynchronously: a write the primary acknowledged is lost if the primary dies before a replica
// has it and the Sentinels promote that replica. Answers that promise durability (a device created, 201; a push
// accepted, 202) first wait until the replicas have everything written so far (WAIT), within a bound.
//
// WAIT covers the writes of the connection that sends it, and blocks that connection meanwhile. So it runs on a
// connection of its own, after a marker write there: the replication stream is ordered, so a replica that has the
// marker has every write any connection of this process had acknowledged before the marker was sent. Callers that
// arrive while a round is in flight share the next one (one marker and one WAIT for all of them).

export interface ReplicaWait {
  /** Resolves once the configured replicas have every write this process made before the call, or the wait timed out. */
  confirm (): Promise<void>
}

export interface ReplicaWaitOptions {
  /** A connection used for nothing else (WAIT blocks it). */
  readonly redis: Redis
  readonly markerKey: string
  /** Replicas to wait for; fewer when the primary has fewer connected. */
  readonly replicas: number
  readonly timeoutMs: number
  readonly logger: Logger
  /** Each round's outcome: replicas that confirmed, replicas waited for, and how long it took. */
  readonly onRound?: (round: { acked: number, wanted: number, ms: number }) => void
}

/** Replicas the primary has connected, from ROLE: ['master', offset, [[ip, port, offset], ...]]. */
function connectedReplicas (role: unknown): number {
  if (!Array.isArray(role) || role[0] !== 'master') return 0
  return Array.isArray(role[2]) ? role[2].length : 0
}

export function createReplicaWait (opts: ReplicaWaitOptions): ReplicaWait {
  const { redis, logger } = opts
  let running: Promise<void> | undefined
  let next: Promise<void> | undefined

  async function round (): Promise<void> {
    const started = Date.now()
    const replies = await redis.multi().call('ROLE').incr(opts.markerKey).exec()
    if (replies === null) throw new Error('replica wait: transaction discarded')
    for (const [err] of replies) if (err !== null) throw err
    const wanted = Math.min(opts.replicas, connectedReplicas(replies[0]?.[1]))
    if (wanted === 0) return
    const acked = Number(await redis.call('WAIT', String(wanted), String(opts.timeoutMs)))
    const ms = Date.now() - started
    opts.onRound?.({ acked, wanted, ms })
    if (acked < wanted) {
      logger.warn({ event: 'redis_wait_timeout', acked, wanted, ms }, 'writes not confirmed by the Redis replicas within the timeout: answering anyway, a failover now may lose them')
    }
  }

  function schedule (): Promise<void> {
    if (running === undefined) {
      running = round().finally(() => { running = undefined })
      return running
    }
    // A round in flight may have sent its marker before this caller's writes: wait for the one after it.
    next ??= running.catch(() => {}).then(() => {
      next = undefined
      return schedule()
    })
    return next
  }

  return {
    async confirm () {
      if (opts.replicas === 0) return
      await schedule()
    }
  }
}
