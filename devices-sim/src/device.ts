// One simulated device: token from the registry, one MQTT connection to the node it was given, subscriptions,
// telemetry, downlink acks, and reconnects with backoff; a refused token (CONNACK 4, 5) or a node that stays
// unavailable or unreachable sends it back to the registry for a new token and node. It measures into the worker's snapshot.

import { backoffDelay, jittered } from './backoff.ts'
import { ConnectError, type Connector, type DeviceConnection } from './connection.ts'
import { SimError } from './errors.ts'
import type { HttpApi, IssuedToken } from './http-api.ts'
import { IdTracker } from './id-tracker.ts'
import type { Limiter } from './limiter.ts'
import type { Snapshot } from './metrics.ts'
import { parseDownlink, telemetryPayload } from './payload.ts'
import type { SourceEndpoint } from './source-endpoints.ts'

export interface DeviceSettings {
  readonly telemetryRate: number
  readonly qos: 0 | 1
  readonly payloadBytes: number
  readonly jitter: number
  readonly keepalive: number
  readonly clean: boolean
  readonly backoffBase: number
  readonly backoffMax: number
  readonly refreshAfter: number
  readonly connectTimeoutMs: number
  readonly reportDevices: boolean
}

export interface DeviceDeps {
  readonly api: HttpApi
  readonly connect: Connector
  readonly http: Limiter
  readonly snap: Snapshot
  readonly settings: DeviceSettings
}

export interface DeviceDetail {
  readonly id: string
  readonly nodes: readonly string[]
  readonly uplinksAcked: readonly number[]
  readonly downlinkIds: { readonly highest: number, readonly unique: number, readonly duplicates: number, readonly expected: number }
  readonly connected: boolean
}

const PULL_LIMIT = 1000
/** CONNACK return codes that refuse the token itself (MQTT 3.1.1: bad user name or password, not authorised). */
const TOKEN_REFUSALS: ReadonlySet<number> = new Set([4, 5])

export class SimDevice {
  private token: IssuedToken | undefined
  private conn: DeviceConnection | undefined
  private readonly ids: IdTracker
  private seq = 0
  private failures = 0
  private stopped = false
  private telemetryOn = false
  private retryTimer: NodeJS.Timeout | undefined
  private telemetryTimer: NodeJS.Timeout | undefined
  /** When the last connection dropped; set until the device is back. */
  private lostAt: number | undefined
  /** Epoch ms of the first CONNACK: a broadcast sent before it reached this device by catch-up, not by fan-out. */
  private firstConnectedAt: number | undefined
  private hadConnection = false
  private readonly inflight = new Set<number>()
  private readonly acked: number[] = []
  private readonly nodes: string[] = []
  expected = 0
  nodeId: string | undefined

  constructor (
    readonly id: string,
    readonly groups: readonly string[],
    private readonly secret: string,
    /** Fresh devices number their downlinks from 1; reused ones from wherever they were. */
    fresh: boolean,
    private readonly source: SourceEndpoint | undefined,
    private readonly deps: DeviceDeps,
    token?: IssuedToken
  ) {
    this.ids = new IdTracker(fresh ? 0 : undefined)
    this.token = token
  }

  get currentToken (): IssuedToken | undefined {
    return this.token
  }

  get connected (): boolean {
    return this.conn !== undefined
  }

  get inflightCount (): number {
    return this.inflight.size
  }

  /** Starts connecting; runs until stop(). */
  start (): void {
    this.attempt().catch(() => {})
  }

  private schedule (delay: number): void {
    if (this.stopped) return
    this.retryTimer = setTimeout(() => { this.attempt().catch(() => {}) }, delay)
  }

  private async attempt (): Promise<void> {
    const { api, http, snap, settings } = this.deps
    if (this.stopped) return
    if (this.token === undefined) {
      try {
        this.token = await http.run(() => api.token(this.id, this.secret))
        snap.counters.tokens++
        if (this.hadConnection) snap.counters.tokenRefreshes++
      } catch (err) {
        snap.counters.tokenErrors++
        this.countReason(`token: ${err instanceof SimError ? String(err.status) : 'error'}`)
        this.failures++
        // 429 carries Retry-After; the backoff is at least as patient.
        this.schedule(backoffDelay(this.failures, this.backoff()))
        if (!(err instanceof SimError)) throw err
        return
      }
    }
    if (this.stopped) return
    const started = performance.now()
    snap.counters.connectAttempts++
    let conn: DeviceConnection | undefined
    try {
      conn = await this.deps.connect({
        url: this.token.broker.mqtt,
        clientId: this.id,
        username: this.id,
        password: this.token.token,
        keepalive: settings.keepalive,
        clean: settings.clean,
        localAddress: this.source?.address,
        localPort: this.source?.port,
        timeoutMs: settings.connectTimeoutMs
      })
      const granted = await conn.subscribe(this.filters(), 1)
      snap.counters.subscribeRefusals += granted.filter((g) => g === 128).length
    } catch (err) {
      conn?.end()
      this.failures++
      if (err instanceof ConnectError && err.kind === 'refused') snap.counters.connackRefusals++
      else snap.counters.connectErrors++
      this.countReason(err instanceof ConnectError ? `connect: ${err.message}` : `subscribe: ${(err as Error).message}`)
      // A refused token (4 bad credentials, 5 not authorised) needs the registry at once. Anything else (3: a node
      // draining or restarting, a network error) keeps the token, as a device maker's firmware would, until
      // refreshAfter failures in a row say the node is gone: a fleet-wide restart must not become a token storm.
      const badToken = err instanceof ConnectError && err.returnCode !== undefined && TOKEN_REFUSALS.has(err.returnCode)
      if (badToken || this.failures >= settings.refreshAfter) this.token = undefined
      this.schedule(backoffDelay(this.failures, this.backoff()))
      return
    }
    if (this.stopped) {
      conn.end()
      return
    }
    const now = performance.now()
    snap.histograms.connect.record(now - started)
    snap.counters.connects++
    this.firstConnectedAt ??= Date.now()
    if (this.lostAt !== undefined) {
      snap.counters.reconnects++
      snap.histograms.reconnect.record(now - this.lostAt)
      this.lostAt = undefined
    }
    this.failures = 0
    this.conn = conn
    this.nodeId = this.token.broker.nodeId
    if (this.nodes[this.nodes.length - 1] !== this.nodeId) this.nodes.push(this.nodeId)
    conn.onMessage((topic, payload) => this.onMessage(topic, payload))
    conn.onClose(() => this.onClose(conn))
    const reconnected = this.hadConnection
    this.hadConnection = true
    if (this.telemetryOn) this.scheduleTelemetry(true)
    if (reconnected) await this.pull()
  }

  private countReason (why: string): void {
    const reasons = this.deps.snap.errorReasons
    // Bounded: messages are few and fixed, but never let them grow without limit.
    if (reasons[why] === undefined && Object.keys(reasons).length >= 50) why = 'other'
    reasons[why] = (reasons[why] ?? 0) + 1
  }

  private backoff (): { base: number, max: number, jitter: number } {
    const s = this.deps.settings
    return { base: s.backoffBase, max: s.backoffMax, jitter: Math.max(0.5, s.jitter) }
  }

  private filters (): string[] {
    return [`devices/${this.id}/down`, 'broadcast/all', ...this.groups.map((g) => `broadcast/groups/${g}`)]
  }

  private onClose (conn: DeviceConnection): void {
    if (this.conn !== conn) return
    this.conn = undefined
    this.nodeId = undefined
    if (this.telemetryTimer !== undefined) clearTimeout(this.telemetryTimer)
    // Uplinks in flight lost their connection before a PUBACK: not confirmed, and not resent (a new sequence
    // number follows), so "acknowledged" stays an exact set for the uplink check.
    this.deps.snap.counters.uplinksUnconfirmed += this.inflight.size
    this.inflight.clear()
    if (this.stopped) return
    this.deps.snap.counters.disconnects++
    this.lostAt = performance.now()
    this.schedule(backoffDelay(1, this.backoff()))
  }

  private onMessage (topic: string, payload: Buffer): void {
    const snap = this.deps.snap
    const d = parseDownlink(payload)
    if (d === undefined) {
      snap.counters.badDownlinks++
      return
    }
    const latency = Date.now() - d.sentAt
    if (topic.startsWith('broadcast/')) {
      snap.counters.broadcasts++
      // Its latency is how long the device was away (or that it did not exist yet, as with the broadcasts of an
      // earlier run still within their ttl), not the fan-out's: counted apart, out of the histogram and the tallies.
      if (this.firstConnectedAt === undefined || d.sentAt < this.firstConnectedAt) {
        snap.counters.broadcastsCaughtUp++
        return
      }
      snap.histograms.broadcast.record(latency)
      const t = snap.broadcasts[d.pushId] ?? { received: 0, maxMs: 0 }
      t.received++
      t.maxMs = Math.max(t.maxMs, latency)
      snap.broadcasts[d.pushId] = t
      return
    }
    if (typeof d.id !== 'number') {
      snap.counters.badDownlinks++
      return
    }
    if (!this.ids.add(d.id)) {
      snap.counters.duplicates++
      return
    }
    snap.counters.downlinks++
    snap.histograms.downlink.record(latency)
    this.ack(d.id)
  }

  private ack (id: number): void {
    const conn = this.conn
    if (conn === undefined) return
    this.deps.snap.counters.acksSent++
    conn.publish(`devices/${this.id}/ack`, Buffer.from(JSON.stringify({ id })), 1).catch(() => {})
  }

  /** Fetches downlinks missed while offline, by id, over HTTP (with the device's token). */
  async pull (): Promise<void> {
    const { api, http, snap } = this.deps
    if (this.token === undefined) return
    const token = this.token.token
    try {
      for (;;) {
        snap.counters.pulls++
        const messages = await http.run(() => api.pull(token, this.ids.lastContiguous, PULL_LIMIT))
        for (const m of messages) {
          if (this.ids.has(m.id)) continue
          this.ids.add(m.id)
          snap.counters.downlinksPulled++
          this.ack(m.id)
        }
        if (messages.length < PULL_LIMIT) return
      }
    } catch {
      snap.counters.pullErrors++
    }
  }

  /** Missing targeted downlinks: announced by the coordinator, never received. */
  get missing (): number {
    return Math.max(0, this.expected - this.ids.unique)
  }

  get gaps (): number {
    return this.ids.gaps
  }

  startTelemetry (): void {
    if (this.deps.settings.telemetryRate <= 0) return
    this.telemetryOn = true
    if (this.conn !== undefined) this.scheduleTelemetry(true)
  }

  stopTelemetry (): void {
    this.telemetryOn = false
    if (this.telemetryTimer !== undefined) clearTimeout(this.telemetryTimer)
  }

  private scheduleTelemetry (first: boolean): void {
    const s = this.deps.settings
    const interval = 1000 / s.telemetryRate
    // The first uplink at a random point of the interval, so devices that connected together do not publish together.
    const delay = first ? Math.random() * interval : jittered(interval, s.jitter)
    this.telemetryTimer = setTimeout(() => {
      this.publish()
      if (this.telemetryOn && this.conn !== undefined) this.scheduleTelemetry(false)
    }, delay)
  }

  private publish (): void {
    const conn = this.conn
    if (conn === undefined) return
    const { snap, settings } = this.deps
    const seq = ++this.seq
    const started = performance.now()
    snap.counters.uplinksSent++
    if (settings.qos === 1) this.inflight.add(seq)
    conn.publish(`devices/${this.id}/telemetry`, telemetryPayload(this.id, seq, Date.now(), settings.payloadBytes), settings.qos).then(() => {
      if (settings.qos === 0) return
      if (!this.inflight.delete(seq)) return // counted as unconfirmed when its connection closed
      snap.counters.uplinksAcked++
      snap.histograms.uplink.record(performance.now() - started)
      if (settings.reportDevices) this.acked.push(seq)
    }, () => {
      if (this.inflight.delete(seq)) snap.counters.uplinkErrors++
    })
  }

  stop (): void {
    this.stopped = true
    this.stopTelemetry()
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    const conn = this.conn
    this.conn = undefined
    this.deps.snap.counters.uplinksUnconfirmed += this.inflight.size
    this.inflight.clear()
    conn?.end()
  }

  detail (): DeviceDetail {
    return {
      id: this.id,
      nodes: this.nodes,
      uplinksAcked: this.acked,
      downlinkIds: { highest: this.ids.highest, unique: this.ids.unique, duplicates: this.ids.duplicates, expected: this.expected },
      connected: this.connected
    }
  }
}
