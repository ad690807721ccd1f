import { generateToken, hashToken } from '../auth/device-token.ts'
import { createRandomPool } from '../shared/random-pool.ts'
import { generateSecret, hashSecret, isLegacySecretHash, unknownDeviceSecretHash, verifySecret } from '../auth/secret-hash.ts'
import { PushlineError } from '../shared/errors.ts'
import type { Device, DeviceStore } from '../stores/device-store.ts'
import type { PresenceEntry, PresenceStore } from '../stores/presence-store.ts'
import type { HistoryStore } from '../stores/history-store.ts'
import type { TokenRecord, TokenStore } from '../stores/token-store.ts'
import type { SecretExchangeStore } from '../stores/secret-exchange-store.ts'
import type { TokenRules } from './token-guard.ts'
import type { ConnectionControl } from './connection-control.ts'
import type { BrokerAddress, NodeAssigner } from './node-assigner.ts'

export const DEVICE_ID_PATTERN = '^[A-Za-z0-9_.-]{1,64}$'
export const GROUP_PATTERN = '^[A-Za-z0-9_.-]{1,64}$'

export interface DeviceView {
  readonly id: string
  readonly groups: string[]
  readonly metadata: Record<string, unknown>
  readonly enabled: boolean
  readonly createdAt: number
  readonly updatedAt: number
}

export interface NewDevice {
  readonly id: string
  readonly groups?: readonly string[]
  readonly metadata?: Readonly<Record<string, unknown>>
}

export interface CreatedDevice {
  readonly id: string
  /** Shown once: only its hash is stored. */
  readonly secret: string
  readonly groups: string[]
}

/** Devices one batch may create (POST /v1/admin/devices/batch). */
export const MAX_BATCH = 10_000

export interface BatchFailure {
  readonly id: string
  /** A stable code: IOT_ERR_DEVICE_EXISTS, IOT_ERR_VALIDATION, or IOT_ERR_UNAVAILABLE (Redis failed: the device may or may not exist). */
  readonly error: string
}

export interface BatchResult {
  readonly created: CreatedDevice[]
  readonly failed: BatchFailure[]
}

export interface IssuedToken {
  readonly token: string
  readonly expiresAt: number
  readonly broker: BrokerAddress
}

/** exchangeSecret's answer when the device's secret is stored in an older form: the caller goes on with issueToken. */
export interface LegacySecret {
  readonly legacy: true
  /** The device's failure count (TokenAdmission.failures). */
  readonly failures: number
}

export type TokenCredentials = { readonly secret: string } | { readonly token: string }

/** The registry's answer for a device presenting a valid client certificate. */
export type CertificateCheck =
  | { readonly ok: true, readonly groups: readonly string[] }
  | { readonly ok: false, readonly reason: 'unknown_device' | 'disabled' | 'revoked' }

export interface DeviceServiceDeps {
  readonly devices: DeviceStore
  readonly tokens: TokenStore
  /** A token for a secret in one step: checks, device read and token record (the same data as the stores above). */
  readonly exchanges: SecretExchangeStore
  readonly connections: ConnectionControl
  /** Where devices are connected: a kick closes the connection presence names. */
  readonly presence: PresenceStore
  readonly assigner: NodeAssigner
  /** The device's downlink history, forgotten with the device. */
  readonly history: Pick<HistoryStore, 'clear'>
  /**
   * Drops a deleted device's MQTT session where this process can (a process with a broker: the session store is
   * shared, so in cluster mode this covers every node); broker nodes also do it when the kick reaches them.
   */
  readonly forgetSession?: (deviceId: string) => Promise<void>
  readonly tokenTtlMs: number
  readonly now?: () => number
  /**
   * Waits until the writes are on the Redis replicas (replica-wait.ts) before a creation, deletion, disabling, secret
   * rotation or revocation answers: a failover must not bring back what the operator was told is gone. Absent in memory.
   */
  readonly confirmWrites?: () => Promise<void>
}

export interface DeviceService {
  create (input: NewDevice): Promise<CreatedDevice>
  /** Creates the devices whose ids are free; ids must be distinct and valid (the route checks both). */
  createBatch (inputs: readonly NewDevice[]): Promise<BatchResult>
  get (id: string): Promise<DeviceView>
  list (query: { after?: string, limit: number, group?: string }): Promise<{ devices: DeviceView[], next: string | undefined }>
  /** Deletes the device and everything kept under its id: tokens, downlink history, MQTT session, live connection. */
  remove (id: string): Promise<void>
  setEnabled (id: string, enabled: boolean): Promise<DeviceView>
  /** A new secret; the device's tokens are revoked and its live connection ended, as by revoke(). */
  rotateSecret (id: string): Promise<CreatedDevice>
  /** Kills every token of the device and every client certificate issued until now, and ends its live connection. */
  revoke (id: string): Promise<number>
  /**
   * Ends the device's live connection on whichever node holds it; tokens and certificates stay valid. Resolves the
   * presence entry of the connection it closes; IOT_ERR_DEVICE_OFFLINE when the device is not online.
   */
  kick (id: string): Promise<PresenceEntry>
  /** Whether a device presenting a valid client certificate issued at `issuedAt` (epoch ms) may connect. */
  checkCertificate (deviceId: string, issuedAt: number): Promise<CertificateCheck>
  /**
   * `admitted` is the caller's admission check (rate limits, lock): the device record is read while it runs, and
   * nothing is checked or written before it resolves; when it fails, its error is the answer.
   */
  issueToken (id: string, credentials: TokenCredentials, admitted?: Promise<unknown>): Promise<IssuedToken>
  /**
   * A token for the device's secret: the token guard's checks (`rules`), the secret check and the token record in one
   * step of the secret exchange store, then the node assignment. The guard's errors, IOT_ERR_BAD_CREDENTIALS (the
   * failure already counted) or IOT_ERR_DEVICE_DISABLED; a secret stored in an older form resolves LegacySecret, the
   * admission counted, and the caller checks it with issueToken.
   */
  exchangeSecret (id: string, secret: string, rules: TokenRules): Promise<IssuedToken | LegacySecret>
  /** The broker's check: the token's record if it is a live token of this device. */
  checkToken (deviceId: string, token: string): Promise<TokenRecord | undefined>
  /** The device a live token belongs to (a device's own HTTP requests), if any. */
  deviceForToken (token: string): Promise<string | undefined>
}

function view (d: Device): DeviceView {
  return { id: d.id, groups: [...d.groups], metadata: { ...d.metadata }, enabled: d.enabled, createdAt: d.createdAt, updatedAt: d.updatedAt }
}

function notFound (id: string): PushlineError {
  return new PushlineError('IOT_ERR_DEVICE_NOT_FOUND', `device ${id} does not exist`, { id })
}

function disabled (id: string): PushlineError {
  return new PushlineError('IOT_ERR_DEVICE_DISABLED', `device ${id} is disabled`, { id })
}

/** Devices per createMany call: each call's outcome is known on its own, so a Redis failure costs only its chunk. */
const BATCH_CHUNK = 500

export function createDeviceService (deps: DeviceServiceDeps): DeviceService {
  const { devices, tokens, connections, assigner } = deps
  const now = deps.now ?? Date.now
  const random = createRandomPool()
  const badCredentials = (): PushlineError =>
    new PushlineError('IOT_ERR_BAD_CREDENTIALS', 'unknown device, wrong secret or invalid token')

  async function cutOff (id: string, reason: 'revoked' | 'disabled' | 'deleted'): Promise<number> {
    const n = await tokens.revokeDevice(id)
    await connections.kick(id, reason)
    return n
  }

  async function mint (device: Device): Promise<IssuedToken> {
    const token = generateToken(random)
    const expiresAt = now() + deps.tokenTtlMs
    // Independent: both go out at once. A token stored for an assignment that failed (no node) is never handed out.
    const [broker] = await Promise.all([assigner.assign(device.id), tokens.put(hashToken(token), { deviceId: device.id, expiresAt, groups: device.groups })])
    return { token, expiresAt, broker }
  }

  function newDevice (input: NewDevice, secret: string, t: number): Device {
    return {
      id: input.id,
      groups: [...new Set(input.groups ?? [])],
      metadata: input.metadata ?? {},
      secretHash: hashSecret(secret),
      enabled: true,
      createdAt: t,
      updatedAt: t
    }
  }

  /** Checks the secret; an unknown id is checked against a record no secret matches, so both cost the same. */
  async function checkSecret (device: Device | undefined, secret: string): Promise<Device> {
    const stored = device?.secretHash ?? unknownDeviceSecretHash()
    const ok = await verifySecret(secret, stored)
    if (!ok || device === undefined) throw badCredentials()
    if (isLegacySecretHash(stored)) {
      // First use of a secret stored by an older release: keep its digest instead. A rotation meanwhile wins.
      const next = hashSecret(secret)
      if (await devices.replaceSecretHash(device.id, stored, next)) return { ...device, secretHash: next }
    }
    return device
  }

  return {
    async create (input) {
      const secret = generateSecret(random)
      const device = newDevice(input, secret, now())
      if (!await devices.create(device)) {
        throw new PushlineError('IOT_ERR_DEVICE_EXISTS', `device ${input.id} already exists`, { id: input.id })
      }
      await deps.confirmWrites?.()
      return { id: device.id, secret, groups: [...device.groups] }
    },

    async createBatch (inputs) {
      const t = now()
      const made = inputs.map((input) => {
        const secret = generateSecret(random)
        return { secret, device: newDevice(input, secret, t) }
      })
      const chunks: Array<typeof made> = []
      for (let i = 0; i < made.length; i += BATCH_CHUNK) chunks.push(made.slice(i, i + BATCH_CHUNK))
      const outcomes = await Promise.allSettled(chunks.map(async (chunk) => await devices.createMany(chunk.map((m) => m.device))))
      const created: CreatedDevice[] = []
      const failed: BatchFailure[] = []
      outcomes.forEach((outcome, c) => {
        const chunk = chunks[c] as typeof made
        chunk.forEach(({ secret, device }, i) => {
          if (outcome.status === 'rejected') failed.push({ id: device.id, error: 'IOT_ERR_UNAVAILABLE' })
          else if (outcome.value[i] === true) created.push({ id: device.id, secret, groups: [...device.groups] })
          else failed.push({ id: device.id, error: 'IOT_ERR_DEVICE_EXISTS' })
        })
      })
      // Secrets shown once must not belong to devices a failover undid.
      if (created.length > 0) await deps.confirmWrites?.()
      return { created, failed }
    },

    async get (id) {
      const d = await devices.get(id)
      if (d === undefined) throw notFound(id)
      return view(d)
    },

    async list (query) {
      const page = await devices.list(query)
      return { devices: page.devices.map(view), next: page.next }
    },

    async remove (id) {
      if (!await devices.delete(id)) throw notFound(id)
      await cutOff(id, 'deleted')
      await deps.history.clear(id)
      await deps.forgetSession?.(id)
      await deps.confirmWrites?.()
    },

    async setEnabled (id, enabled) {
      const d = await devices.update(id, { enabled }, now())
      if (d === undefined) throw notFound(id)
      if (!enabled) await cutOff(id, 'disabled')
      await deps.confirmWrites?.()
      return view(d)
    },

    async rotateSecret (id) {
      const secret = generateSecret(random)
      const d = await devices.update(id, { secretHash: hashSecret(secret) }, now())
      if (d === undefined) throw notFound(id)
      // Whoever held the old secret may hold a token made with it: those go too.
      await cutOff(id, 'revoked')
      await deps.confirmWrites?.()
      return { id, secret, groups: [...d.groups] }
    },

    async revoke (id) {
      // Recorded first: a certificate device that reconnects the moment it is kicked is refused.
      if (await devices.update(id, { revokedAt: now() }, now()) === undefined) throw notFound(id)
      const revoked = await cutOff(id, 'revoked')
      // A revocation a failover undid would bring a stolen token back.
      await deps.confirmWrites?.()
      return revoked
    },

    async kick (id) {
      if (await devices.get(id) === undefined) throw notFound(id)
      const entry = await deps.presence.get(id)
      if (entry === undefined) throw new PushlineError('IOT_ERR_DEVICE_OFFLINE', `device ${id} is not online`, { id })
      // Narrowed to this connection: one the device opened since (after a takeover, or reconnecting) stays.
      await connections.kick(id, 'kicked', { nodeId: entry.nodeId, epoch: entry.epoch })
      return entry
    },

    async checkCertificate (deviceId, issuedAt) {
      const device = await devices.get(deviceId)
      if (device === undefined) return { ok: false, reason: 'unknown_device' }
      if (!device.enabled) return { ok: false, reason: 'disabled' }
      if (device.revokedAt !== undefined && issuedAt <= device.revokedAt) return { ok: false, reason: 'revoked' }
      return { ok: true, groups: device.groups }
    },

    async issueToken (id, credentials, admitted) {
      // One round trip fewer per token: the read does not wait for the admission, only what follows it does.
      let [, device] = await Promise.all([admitted, devices.get(id)])
      if ('secret' in credentials) {
        device = await checkSecret(device, credentials.secret)
      } else {
        // Taken, not read: of concurrent refreshes with one token exactly one gets it. Connections opened with it stay up.
        const rec = await tokens.take(hashToken(credentials.token), id, now())
        if (rec === undefined || device === undefined) throw badCredentials()
      }
      if (!device.enabled) throw disabled(id)
      return await mint(device)
    },

    async exchangeSecret (id, secret, rules) {
      const token = generateToken(random)
      const expiresAt = now() + deps.tokenTtlMs
      const outcome = await deps.exchanges.exchange({ deviceId: id, ...rules, secretHash: hashSecret(secret), tokenHash: hashToken(token), expiresAt })
      switch (outcome.status) {
        case 'refused': return rules.refuse(outcome.hits, outcome.lock)
        case 'bad-credentials': throw badCredentials()
        case 'disabled': throw disabled(id)
        case 'legacy': return { legacy: true, failures: outcome.failures }
        case 'issued':
          // After the store's step, not beside it: a refused request must not count against a node. A token stored
          // for an assignment that failed (no node) is never handed out.
          return { token, expiresAt, broker: await assigner.assign(id) }
      }
    },

    async checkToken (deviceId, token) {
      const rec = await tokens.get(hashToken(token), now())
      return rec?.deviceId === deviceId ? rec : undefined
    },

    async deviceForToken (token) {
      return (await tokens.get(hashToken(token), now()))?.deviceId
    }
  }
}
