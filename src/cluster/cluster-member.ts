import { randomBytes } from 'node:crypto'
import type { Client } from 'aedes'
import type { Logger } from 'pino'
import type { BrokerNode } from '../broker/create-broker-node.ts'
import { connectionOrigin } from '../broker/connection-origin.ts'
import type { CounterStore } from '../stores/counter-store.ts'
import type { ConnectionOrigin, PresenceEntry, PresenceStore } from '../stores/presence-store.ts'
import type { NodeRecord, NodeRegistry, NodeTraffic } from '../stores/node-registry.ts'
import { eachWithLimit } from '../shared/each-with-limit.ts'
import { watchEventLoopDelay, type EventLoopDelay } from '../shared/event-loop-delay.ts'

// A broker node's part in the cluster:
// - presence: every registered client gets an entry (node, epoch); its disconnect removes the entry only if the
//   epoch still matches; a connect write that fails is repeated, with back-off, until Redis answers (the write
//   carries an id of its connection, so the repeat knows whether the first attempt ran: docs/cluster.md, Presence);
// - heartbeat: the node record (addresses, live sessions, weight, draining) is rewritten with a TTL;
// - reconciliation every heartbeat period: live sessions and this node's presence entries are counted, and when
//   the counts differ (or every FULL_RECONCILE_MS) compared one by one and repaired both ways (aedes can miss a
//   clientDisconnect, moscajs/aedes#1023);
// - dead nodes: a node whose record expired has its presence entries removed by a survivor;
// - late nodes: a node that was only late (starved, paused) and finds its record had expired re-asserts its live
//   connections at once, each under a fresh epoch with a `connected` event, so presence and the presence stream
//   agree with its sessions again (docs/cluster.md, Late nodes);
// - drain: on an operator's order the node refuses new connections and closes its clients in paced waves.

/**
 * Why presence changed. Disconnects: normal, takeover, node-dead, kicked, keepalive, reconciled (an entry whose
 * connection had closed unseen, removed by reconciliation). Connects: restored (an entry re-asserted by
 * reconciliation under a fresh epoch, after a node-dead sweep or a lost write); a plain connect has none.
 */
export type PresenceReason = 'normal' | 'takeover' | 'node-dead' | 'kicked' | 'keepalive' | 'reconciled' | 'restored'

export interface PresenceEvent {
  readonly event: 'connected' | 'disconnected'
  readonly deviceId: string
  readonly nodeId: string
  readonly epoch: number
  readonly at: number
  readonly reason?: PresenceReason
}

export interface ClusterMemberOptions {
  readonly nodeId: string
  readonly logger: Logger
  readonly registry: NodeRegistry
  readonly presence: PresenceStore
  readonly heartbeatMs: number
  readonly weight: number
  /** Clients closed per second while draining. */
  readonly drainRate: number
  /** Read at every heartbeat and written into the node record (the dashboard's cluster-wide rates). */
  readonly traffic?: () => Promise<NodeTraffic>
  /** Stored sessions of devices offline longer than this are deleted; 0 keeps them forever. */
  readonly sessionExpiryMs: number
  /** Holds the cluster-wide lock that lets one node at a time run the session reaper. */
  readonly counters: CounterStore
  readonly onPresence?: (event: PresenceEvent) => void
  /** Each reconciliation's finding before it repairs: live sessions minus this node's presence entries. */
  readonly onDrift?: (drift: number) => void
  /**
   * A device connected here while presence named its connection on another node (`replaced`): that node must
   * close it (closeReplaced there). This backs aedes's own cross-node takeover (a $SYS/{node}/new/clients
   * publish on every connect, after which every other node closes its client with that id): presence and the
   * surviving connection then agree.
   */
  readonly onTakeover?: (deviceId: string, replaced: PresenceEntry) => void
}

export interface MemberAddresses {
  readonly mqtt: string
  readonly ws: string
  readonly mqtts?: string
  readonly wss?: string
  readonly http: string
}

export interface ClusterStatus {
  readonly heartbeatOk: boolean
  readonly draining: boolean
  readonly lastError: string | undefined
}

export interface ClusterMember {
  /** Starts tracking the broker's clients and heartbeating. */
  start (broker: BrokerNode, addresses: MemberAddresses): Promise<void>
  status (): ClusterStatus
  /** Runs one heartbeat, reconciliation and dead-node sweep now (tests, and the timer). */
  tick (): Promise<void>
  /** Notes that the device's connection here is about to be closed by an operator (revoke, disable, delete). */
  markKicked (deviceId: string): void
  /**
   * Closes the device's connection here unless its presence epoch is newer than `epoch`; true if closed. `asKick`:
   * an operator's order (its presence event says so), not a takeover.
   */
  closeReplaced (deviceId: string, epoch: number, asKick?: boolean): Promise<boolean>
  /** Stops timers; the node stays registered until leave(). */
  stop (): Promise<void>
  /** After the broker closed: removes this node's presence entries and its record. */
  leave (): Promise<void>
}

const FULL_RECONCILE_MS = 30_000
/**
 * Presence repairs of one reconciliation in flight at once: enough to share round trips, few enough that the connects
 * being authenticated meanwhile (PUSHLINE_CONNECT_CONCURRENCY, on the same Redis connection) do not queue behind them.
 */
const REPAIRS_IN_FLIGHT = 64

export function createClusterMember (opts: ClusterMemberOptions): ClusterMember {
  const { logger, registry, presence, nodeId } = opts
  // The presence entry each local client got; the promise settles when its connect is recorded (undefined: the
  // connection closed before its write got an answer, or a newer connection of the device holds the entry).
  const entries = new WeakMap<Client, Promise<PresenceEntry | undefined>>()
  // The same once settled, read without waiting: reconciliation leaves alone a client whose write is still in flight
  // or being repeated, and the entry of its id, which that write may turn out to own.
  const recorded = new WeakMap<Client, PresenceEntry>()
  // Connection ids: this process's random part and a counter. A node restarted with the same id gets a new random
  // part, so the repeat of a write never mistakes the previous process's entry for its own.
  const instance = randomBytes(6).toString('base64url')
  let connections = 0
  // Each local client's connection id, the one its presence entry carries.
  const connectionOf = new WeakMap<Client, string>()
  const kicked = new WeakSet<Client>()
  let broker: BrokerNode | undefined
  let addresses: MemberAddresses | undefined
  let timer: NodeJS.Timeout | undefined
  let loopDelay: EventLoopDelay | undefined
  /** The longest event loop stall since the last heartbeat that succeeded (logged with a rejoin). */
  let worstStallMs = 0
  let drainTimer: NodeJS.Timeout | undefined
  let beating: Promise<boolean> | undefined
  let upkeeping: Promise<void> | undefined
  let sweeping: Promise<void> | undefined
  let draining = false
  let heartbeatOk = false
  /** Since when this node's heartbeats have succeeded without a break (undefined while they fail). */
  let heartbeatOkSince: number | undefined
  let ticks = 0
  /** This node has written its record once (a heartbeat that finds none after that means it was late). */
  let registered = false
  /** Since a rejoin, until two periods have passed: reconciliation runs every tick. */
  let rejoined = false
  let lastError: string | undefined
  const startedAt = Date.now()

  const fail = (what: string) => (err: Error): undefined => {
    lastError = `${what}: ${err.message}`
    logger.warn({ event: 'cluster_error', what, err: err.message }, 'cluster operation failed; reconciliation will repair it')
    return undefined
  }

  function onClient (client: Client): void {
    const connection = `${instance}.${(++connections).toString(36)}`
    connectionOf.set(client, connection)
    entries.set(client, record(client, Date.now(), connectionOrigin(client), connection))
  }

  /**
   * Writes the connection's presence entry, repeating a write that failed (under load a Redis command times out,
   * whether or not Redis ran it) with back-off until Redis answers or the connection closes. Closing instead made
   * every such device reconnect and add to the load that failed the write. The repeat goes down the same Redis
   * connection as the attempt, after it, so when it is answered the attempt has either run or never will.
   */
  async function record (client: Client, at: number, origin: ConnectionOrigin, connection: string): Promise<PresenceEntry | undefined> {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        await new Promise((resolve) => setTimeout(resolve, retryDelay(attempt)).unref())
        if (client.closed) return undefined
      }
      // Logged once per connection: under load thousands of connections repeat their writes at once.
      const outcome = await presence.connect(client.id, nodeId, at, origin, connection).catch(attempt === 0 ? fail('presence connect') : () => undefined)
      if (outcome === undefined) continue
      const { result, entry, replaced } = outcome
      if (result === 'superseded') {
        // A connection of the device made after this one holds the entry: this one was taken over, and the close of
        // the takeover may not have reached it (or was sent before this one was recorded).
        if (!client.closed) {
          logger.warn({ event: 'presence_repaired', deviceId: client.id, how: 'closed-superseded', via: 'connect', holder: entry.nodeId }, 'connection taken over elsewhere was still open: closed')
          client.close()
        }
        return undefined
      }
      if (result === 'connected' && replaced !== undefined && replaced.nodeId !== nodeId) {
        opts.onTakeover?.(client.id, replaced)
        opts.onPresence?.({ event: 'disconnected', deviceId: client.id, nodeId: replaced.nodeId, epoch: replaced.epoch, at, reason: 'takeover' })
      }
      if (attempt > 0) logger.info({ event: 'presence_repaired', deviceId: client.id, how: result === 'adopted' ? 'adopted' : 'rewritten', attempts: attempt + 1 }, 'presence write repeated after a failure')
      // Adopted: the first attempt ran but nobody heard of it, so this is the connection's one `connected` event.
      opts.onPresence?.({ event: 'connected', deviceId: client.id, nodeId, epoch: entry.epoch, at })
      if (entries.has(client)) recorded.set(client, entry)
      return entry
    }
  }

  /** Doubling from 100 ms up to a heartbeat period, each delay drawn from its upper half so repeats spread out. */
  function retryDelay (attempt: number): number {
    const ceiling = Math.min(Math.max(100, opts.heartbeatMs), 100 * 2 ** Math.min(attempt - 1, 16))
    return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
  }

  function onDisconnect (client: Client, reason: PresenceReason): void {
    const p = entries.get(client)
    if (p === undefined) return
    entries.delete(client)
    recorded.delete(client)
    p.then(async (entry) => {
      if (entry === undefined) return
      const at = Date.now()
      // A takeover elsewhere already replaced the entry: then this removes nothing and reports nothing.
      if (await presence.disconnect(client.id, nodeId, entry.epoch, at)) {
        opts.onPresence?.({ event: 'disconnected', deviceId: client.id, nodeId, epoch: entry.epoch, at, reason })
      }
    }).catch(fail('presence disconnect'))
  }

  const keepaliveGone = new WeakSet<Client>()
  const handlers = {
    client: (c: Client) => { onClient(c) },
    clientDisconnect: (c: Client) => { onDisconnect(c, kicked.has(c) ? 'kicked' : keepaliveGone.has(c) ? 'keepalive' : 'normal') },
    keepaliveTimeout: (c: Client) => { keepaliveGone.add(c) }
  }

  /**
   * A live connection's entry is back under a fresh epoch: the client's disconnect must remove that one, and the
   * stream hears of it. Had the client disconnected meanwhile (its handler ran with the old epoch, which matched
   * nothing), the re-added entry is removed again, with no event either way.
   */
  async function restored (c: Client, entry: PresenceEntry): Promise<void> {
    if (!entries.has(c)) {
      await presence.disconnect(entry.deviceId, nodeId, entry.epoch, Date.now())
      return
    }
    entries.set(c, Promise.resolve(entry))
    recorded.set(c, entry)
    logger.info({ event: 'presence_repaired', deviceId: c.id, how: 'restored' }, 'presence entry restored')
    opts.onPresence?.({ event: 'connected', deviceId: c.id, nodeId, epoch: entry.epoch, at: Date.now(), reason: 'restored' })
  }

  /**
   * Whether the newer entry Redis holds for a live connection is that connection's own restore. Restores carry the
   * connection's id, which is unique in the cluster, so that decides it even when aedes no longer maps the device's
   * id to this client (a closing connection's unregister can delete the map entry of the one that replaced it).
   * Entries without an id (older nodes, tools) fall back to the node and aedes's map.
   */
  function ownRestore (c: Client, mine: PresenceEntry, now: PresenceEntry, b: BrokerNode): boolean {
    if (now.nodeId !== nodeId) return false
    if (mine.connection !== undefined && now.connection !== undefined) return mine.connection === now.connection
    return b.localClient(c.id) === c
  }

  /** Removes an entry of this node whose connection closed unseen, unless a newer write replaced it meanwhile. */
  async function removeStale (s: PresenceEntry): Promise<void> {
    const at = Date.now()
    if (await presence.disconnect(s.deviceId, nodeId, s.epoch, at)) {
      logger.info({ event: 'presence_repaired', deviceId: s.deviceId, how: 'removed' }, 'stale presence entry removed')
      opts.onPresence?.({ event: 'disconnected', deviceId: s.deviceId, nodeId, epoch: s.epoch, at, reason: 'reconciled' })
    }
  }

  /**
   * Whether a newer entry naming this node was left by a connection of this process that is no longer live: one that
   * closed while its write was being repeated (record() gives up on a closed client, docs/cluster.md), or that aedes
   * closed without a clientDisconnect. Read from the live clients now, not from the pass's snapshot: a connection's
   * write goes out after aedes registers it, so the writer of any entry Redis holds is in the list while it is open.
   */
  function leftByClosed (now: PresenceEntry, b: BrokerNode): boolean {
    if (now.nodeId !== nodeId || now.connection === undefined || !now.connection.startsWith(`${instance}.`)) return false
    return !b.liveClients().some((x) => connectionOf.get(x) === now.connection)
  }

  async function reconcile (b: BrokerNode): Promise<void> {
    // Stored entries first, live clients second: a client that registers in between is then live with its
    // entry possibly missing (restored, a no-op when it is there), never stored-but-not-live, which would remove
    // the entry of a live client, and with it the takeover of that client by a later connection elsewhere.
    const stored = await presence.listNode(nodeId)
    const live = b.liveClients()
    opts.onDrift?.(live.length - stored.length)
    const storedByDevice = new Map(stored.map((e) => [e.deviceId, e]))
    const liveEpochs = new Map<string, number>()
    /** Brings one live connection's entry in line with Redis (restore, adopt, or close a superseded connection). */
    const repair = async (c: Client): Promise<void> => {
      // Its presence write is in flight or being repeated (record()), which settles it either way.
      const entry = recorded.get(c)
      if (entry === undefined) return
      const s = storedByDevice.get(c.id)
      if (s !== undefined && s.epoch === entry.epoch) {
        liveEpochs.set(c.id, entry.epoch)
        return
      }
      let { result, entry: now } = await presence.restore(entry)
      if (result === 'superseded' && !c.closed && leftByClosed(now, b)) {
        // Nothing live replaced this connection: remove exactly that leftover (the epoch guards a newer write) and
        // restore this one. A newer connection that writes meanwhile still wins: the restore then answers superseded.
        logger.warn({ event: 'presence_repaired', deviceId: c.id, how: 'restored-over-closed' }, 'a closed connection\'s newer entry replaced nothing live: removed, and the live connection restored')
        await removeStale(now)
        ;({ result, entry: now } = await presence.restore(entry))
      }
      if (result === 'restored') await restored(c, now)
      if (result === 'superseded' && !c.closed && ownRestore(c, entry, now, b)) {
        // The newer entry is this connection's own restore from an earlier pass, run by Redis but timed out before
        // its reply (under load), so neither the entry nor the stream heard of it. Adopt it as a restore; closing
        // would drop a connected device that nothing replaced.
        await restored(c, now)
        liveEpochs.set(c.id, now.epoch)
        return
      }
      // A newer connection of the device holds its entry, here or on another node, and this one is still open:
      // the takeover's close never arrived (the kick and aedes's announcement both travel over pub/sub, at most
      // once), or aedes lost this one from its client map and so never closed it. Presence is the truth: close it.
      if (result === 'superseded' && !c.closed) {
        const held = b.localClient(c.id)
        logger.warn({ event: 'presence_repaired', deviceId: c.id, how: 'closed-superseded', via: 'reconcile', holder: now.nodeId, aedesHolds: held === undefined ? 'none' : held === c ? 'this' : 'other' }, 'connection taken over elsewhere was still open: closed')
        c.close()
      }
      liveEpochs.set(c.id, now.epoch)
    }
    // After a rejoin (a survivor swept every entry of this node) or a restart under the same id (every entry of the
    // previous process is stale) a pass repairs thousands of entries, each a Redis round trip: taken one at a time
    // on a loaded node they last many seconds, with presence wrong all along. Different devices are repaired side by
    // side; the connections of one device (an old one closing, a new one registered) one after another, in aedes's
    // order, since each repair reads what the one before it wrote.
    const byDevice = new Map<string, Client[]>()
    for (const c of live) {
      const same = byDevice.get(c.id)
      if (same === undefined) byDevice.set(c.id, [c])
      else same.push(c)
    }
    await eachWithLimit(byDevice.values(), REPAIRS_IN_FLIGHT, async (clients) => { for (const c of clients) await repair(c) })
    // A set of ids: scanning every live client for each stored entry costs stored × live steps, and after a restart
    // with the same node id nearly every stored entry is a stale one of the previous process.
    const unrecordedIds = new Set(live.filter((c) => recorded.get(c) === undefined).map((c) => c.id))
    const stale = stored.filter((s) => liveEpochs.get(s.deviceId) !== s.epoch && !unrecordedIds.has(s.deviceId))
    await eachWithLimit(stale, REPAIRS_IN_FLIGHT, removeStale)
  }

  /**
   * Counts first, lists only when needed: listing every client and entry each period cost a node holding 16,000
   * devices about a tenth of its CPU (SMEMBERS + HMGET of every id, an await per client), in steady state for
   * nothing. Equal counts can still hide a missing entry paired with a stale one, so a full pass runs at least
   * every FULL_RECONCILE_MS.
   */
  let lastFull = 0
  async function checkPresence (b: BrokerNode): Promise<void> {
    const stored = await presence.countNode(nodeId)
    const drift = b.liveSessions() - stored
    if (drift === 0 && Date.now() - lastFull < FULL_RECONCILE_MS) {
      opts.onDrift?.(0)
      return
    }
    lastFull = Date.now()
    await reconcile(b)
  }

  async function sweepDeadNodes (): Promise<void> {
    for (const dead of await registry.dead()) {
      if (dead === nodeId) continue
      const at = Date.now()
      // A node may be only late, not dead, and come back at any point of this: its reconciliation then re-adds
      // what this removes, each entry under a newer epoch than the disconnected event sent here (docs/cluster.md).
      const removed = await presence.removeNode(dead, at)
      const forgotten = await registry.forgetDead(dead)
      if (removed.length > 0 || forgotten) logger.warn({ event: 'node_dead', deadNode: dead, devices: removed.length }, 'removed a dead node\'s presence')
      for (const e of removed) opts.onPresence?.({ event: 'disconnected', deviceId: e.deviceId, nodeId: dead, epoch: e.epoch, at, reason: 'node-dead' })
    }
  }

  // MQTT 3.1.1 sessions never expire by themselves: every node keeps every persistent subscription in memory
  // and Redis keeps its queue. One node per interval (a cluster-wide lock) deletes the stale ones.
  const reapEveryMs = Math.min(60_000, Math.max(1000, Math.round(opts.sessionExpiryMs / 4)))
  let lastReap = 0
  async function reapSessions (b: BrokerNode): Promise<void> {
    if (opts.sessionExpiryMs === 0 || Date.now() - lastReap < reapEveryMs) return
    lastReap = Date.now()
    if ((await opts.counters.hit('session-reaper', reapEveryMs)).count !== 1) return
    const stale = await presence.staleSince(Date.now() - opts.sessionExpiryMs, 1000)
    for (const deviceId of stale) {
      // A device that came back meanwhile is online and off the stale list: check before deleting.
      if (await presence.get(deviceId) !== undefined) continue
      await b.dropSession(deviceId)
      await presence.forgetSeen(deviceId)
    }
    if (stale.length > 0) logger.info({ event: 'sessions_reaped', count: stale.length }, 'deleted expired persistent sessions')
  }

  function startDrain (b: BrokerNode): void {
    draining = true
    b.setAccepting(false)
    logger.warn({ event: 'drain_start', sessions: b.liveSessions(), rate: opts.drainRate }, 'draining: closing connections in waves')
    // A wave every 100 ms, or one connection a wave when the rate is under 10 per second, so no rate is exceeded.
    const waveMs = Math.max(100, Math.ceil(1000 / opts.drainRate))
    const perWave = Math.max(1, Math.round(opts.drainRate * waveMs / 1000))
    drainTimer = setInterval(() => {
      const wave = b.liveClients().slice(0, perWave)
      if (wave.length === 0) {
        clearInterval(drainTimer)
        drainTimer = undefined
        logger.warn({ event: 'drain_done' }, 'drained: no connections left')
        return
      }
      for (const c of wave) { kicked.add(c); c.close() }
    }, waveMs)
  }

  function stopDrain (b: BrokerNode): void {
    draining = false
    if (drainTimer !== undefined) clearInterval(drainTimer)
    drainTimer = undefined
    b.setAccepting(true)
    logger.warn({ event: 'drain_cancelled' }, 'drain cancelled: accepting connections again')
  }

  /** The node record and the drain order; resolves whether the heartbeat succeeded. */
  async function heartbeat (): Promise<boolean> {
    const b = broker
    const a = addresses
    if (b === undefined || a === undefined) return false
    try {
      const traffic = await opts.traffic?.()
      const record = (): NodeRecord => ({
        nodeId, ...a, connections: b.liveSessions(), weight: opts.weight, draining, startedAt, heartbeatAt: Date.now(), ...(traffic !== undefined && { traffic })
      })
      // Three heartbeats may be missed before the record expires; survivors sweep twice per period.
      const ttlMs = Math.round(opts.heartbeatMs * 1.5)
      // The drain order and the record in one round trip: under load each round trip waits for a whole event loop turn
      // of the node, and two in a row let the record expire between heartbeats that all succeeded.
      const [drainOrder, wasLive] = await Promise.all([registry.drainRequested(nodeId), registry.heartbeat(record(), ttlMs)])
      if (drainOrder !== draining) {
        if (drainOrder) startDrain(b)
        else stopDrain(b)
        // The record just written has the previous state: the assigner must stop (or resume) sending devices here now.
        await registry.heartbeat(record(), ttlMs)
      }
      heartbeatOk = true
      if (!wasLive && registered) {
        // This node was late (a starved event loop, a long GC, a paused process), not dead, but its record expired:
        // a survivor may have removed its presence already, or may yet. Re-assert every live connection now, and
        // trust its own view of others only after two periods, as after an outage.
        logger.warn({ event: 'node_rejoined', sessions: b.liveSessions(), eventLoopMaxMs: worstStallMs }, 'this node\'s record had expired (it was late): re-asserting its presence')
        heartbeatOkSince = Date.now()
        lastFull = 0
        rejoined = true
      }
      registered = true
      worstStallMs = 0
      heartbeatOkSince ??= Date.now()
      return true
    } catch (err) {
      heartbeatOk = false
      heartbeatOkSince = undefined
      fail('heartbeat')(err as Error)
      return false
    }
  }

  /** Reconciliation and the session reaper: the work that may take long under load. */
  async function upkeep (): Promise<void> {
    const b = broker
    if (b === undefined) return
    // Once per heartbeat period (the sweep runs twice); at once after a rejoin. A rejoined node keeps checking every
    // tick until its entries match: a survivor that saw its record expired may sweep them after the first check.
    if (++ticks % 2 === 0 || rejoined) {
      await checkPresence(b).catch(fail('reconcile'))
      if (rejoined && Date.now() - (heartbeatOkSince ?? 0) >= 2 * opts.heartbeatMs) rejoined = false
    }
    await reapSessions(b).catch(fail('session reaper'))
  }

  /**
   * The dead-node sweep, apart from the upkeep: a dead node's presence goes within two heartbeat periods, also while
   * this node's own reconciliation is long (after a restart of every node, each reconciles thousands of entries).
   */
  async function sweep (): Promise<void> {
    // After a Redis outage or failover longer than a record's TTL every node's record has expired, live or not: only
    // a node that has heartbeated for two periods since, which the live ones have too by then, may call others dead.
    // Sweeping at once removed the presence of every live node and announced their devices as disconnected.
    if (heartbeatOkSince !== undefined && Date.now() - heartbeatOkSince >= 2 * opts.heartbeatMs) await sweepDeadNodes().catch(fail('dead-node sweep'))
  }

  /**
   * A heartbeat, then the upkeep and the dead-node sweep if the heartbeat succeeded. Each runs one at a time (a slow
   * Redis must not pile them up), but apart: a long reconciliation under load must not hold back the heartbeats, or a
   * live node looks dead to the others, nor the sweep, or a dead node's devices stay online (docs/cluster.md,
   * Membership).
   */
  async function tick (): Promise<void> {
    beating ??= heartbeat().finally(() => { beating = undefined })
    if (!await beating) return
    upkeeping ??= upkeep().finally(() => { upkeeping = undefined })
    sweeping ??= sweep().finally(() => { sweeping = undefined })
    await Promise.all([upkeeping, sweeping])
  }

  /**
   * A stall of half a heartbeat period or more puts the node record at risk (TTL 1.5 periods) and times out the Redis
   * commands waiting for their replies: logged, so a rejoin or a burst of timeouts can be told apart from a slow Redis.
   */
  function noteStalls (): void {
    if (loopDelay === undefined) return
    const maxMs = loopDelay.take()
    worstStallMs = Math.max(worstStallMs, maxMs)
    if (maxMs >= opts.heartbeatMs / 2) logger.warn({ event: 'event_loop_stalled', maxMs, sessions: broker?.liveSessions() }, 'the event loop was held up')
  }

  return {
    async start (b, a) {
      broker = b
      addresses = a
      b.aedes.on('client', handlers.client)
      b.aedes.on('clientDisconnect', handlers.clientDisconnect)
      b.aedes.on('keepaliveTimeout', handlers.keepaliveTimeout)
      // Devices that connected between the listeners opening and now.
      for (const c of b.liveClients()) if (!entries.has(c)) onClient(c)
      await tick()
      loopDelay = watchEventLoopDelay()
      // Half a period: a dead node (record TTL 1.5 periods) is swept within two heartbeat periods.
      timer = setInterval(() => {
        noteStalls()
        tick().catch(() => {})
      }, Math.max(50, Math.round(opts.heartbeatMs / 2)))
    },
    status: () => ({ heartbeatOk, draining, lastError }),
    markKicked (deviceId) {
      const c = broker?.localClient(deviceId)
      if (c !== undefined) kicked.add(c)
    },
    async closeReplaced (deviceId, epoch, asKick = false) {
      const c = broker?.localClient(deviceId)
      if (c === undefined) return false
      // An unknown epoch (the presence write failed or timed out, though Redis may have run it) or an older one
      // loses too: presence names the connection elsewhere. Only a newer connection here stays.
      const entry = await entries.get(c)
      if (c.closed || (entry !== undefined && entry.epoch > epoch)) return false
      if (asKick) kicked.add(c)
      c.close()
      return true
    },
    tick,
    async stop () {
      if (timer !== undefined) clearInterval(timer)
      loopDelay?.stop()
      loopDelay = undefined
      if (drainTimer !== undefined) clearInterval(drainTimer)
      timer = undefined
      await Promise.all([beating, upkeeping, sweeping])
    },
    async leave () {
      if (broker === undefined) return
      await presence.removeNode(nodeId, Date.now()).catch(fail('leave'))
      await registry.forget(nodeId).catch(fail('leave'))
    }
  }
}
