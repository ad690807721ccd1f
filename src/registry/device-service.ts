import { generateToken, hashToken } from '../auth/device-token.ts'
import { generateSecret, hashSecret, verifySecret } from '../auth/secret-hash.ts'
import { PushlineError } from '../shared/errors.ts'
import type { Device, DeviceStore } from '../stores/device-store.ts'
import type { PresenceEntry, PresenceStore } from '../stores/presence-store.ts'
import type { TokenRecord, TokenStore } from '../stores/token-store.ts'
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

export interface IssuedToken {
  readonly token: string
  readonly expiresAt: number
  readonly broker: BrokerAddress
}

export type TokenCredentials = { readonly secret: string } | { readonly token: string }

/** The registry's answer for a device presenting a valid client certificate. */
export type CertificateCheck =
  | { readonly ok: true, readonly groups: readonly string[] }
  | { readonly ok: false, readonly reason: 'unknown_device' | 'disabled' | 'revoked' }

export interface DeviceServiceDeps {
  readonly devices: DeviceStore
  readonly tokens: TokenStore
  readonly connections: ConnectionControl
  /** Where devices are connected: a kick closes the connection presence names. */
  readonly presence: PresenceStore
  readonly assigner: NodeAssigner
  readonly tokenTtlMs: number
  readonly secretHashCost: number
  readonly now?: () => number
}

export interface DeviceService {
  create (input: NewDevice): Promise<CreatedDevice>
  get (id: string): Promise<DeviceView>
  list (query: { after?: string, limit: number, group?: string }): Promise<{ devices: DeviceView[], next: string | undefined }>
  remove (id: string): Promise<void>
  setEnabled (id: string, enabled: boolean): Promise<DeviceView>
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
  issueToken (id: string, credentials: TokenCredentials): Promise<IssuedToken>
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

export function createDeviceService (deps: DeviceServiceDeps): DeviceService {
  const { devices, tokens, connections, assigner } = deps
  const now = deps.now ?? Date.now
  const badCredentials = (): PushlineError =>
    new PushlineError('IOT_ERR_BAD_CREDENTIALS', 'unknown device, wrong secret or invalid token')

  async function cutOff (id: string, reason: 'revoked' | 'disabled' | 'deleted'): Promise<number> {
    const n = await tokens.revokeDevice(id)
    await connections.kick(id, reason)
    return n
  }

  async function mint (device: Device): Promise<IssuedToken> {
    const token = generateToken()
    const expiresAt = now() + deps.tokenTtlMs
    await tokens.put(hashToken(token), { deviceId: device.id, expiresAt, groups: device.groups })
    return { token, expiresAt, broker: await assigner.assign(device.id) }
  }

  return {
    async create (input) {
      const secret = generateSecret()
      const t = now()
      const device: Device = {
        id: input.id,
        groups: [...new Set(input.groups ?? [])],
        metadata: input.metadata ?? {},
        secretHash: await hashSecret(secret, deps.secretHashCost),
        enabled: true,
        createdAt: t,
        updatedAt: t
      }
      if (!await devices.create(device)) {
        throw new PushlineError('IOT_ERR_DEVICE_EXISTS', `device ${input.id} already exists`, { id: input.id })
      }
      return { id: device.id, secret, groups: [...device.groups] }
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
    },

    async setEnabled (id, enabled) {
      const d = await devices.update(id, { enabled }, now())
      if (d === undefined) throw notFound(id)
      if (!enabled) await cutOff(id, 'disabled')
      return view(d)
    },

    async rotateSecret (id) {
      const secret = generateSecret()
      const d = await devices.update(id, { secretHash: await hashSecret(secret, deps.secretHashCost) }, now())
      if (d === undefined) throw notFound(id)
      return { id, secret, groups: [...d.groups] }
    },

    async revoke (id) {
      // Recorded first: a certificate device that reconnects the moment it is kicked is refused.
      if (await devices.update(id, { revokedAt: now() }, now()) === undefined) throw notFound(id)
      return await cutOff(id, 'revoked')
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

    async issueToken (id, credentials) {
      const device = await devices.get(id)
      if (device === undefined) throw badCredentials()
      if ('secret' in credentials) {
        if (!await verifySecret(credentials.secret, device.secretHash)) throw badCredentials()
      } else {
        const rec = await tokens.get(hashToken(credentials.token), now())
        if (rec === undefined || rec.deviceId !== id) throw badCredentials()
      }
      if (!device.enabled) throw new PushlineError('IOT_ERR_DEVICE_DISABLED', `device ${id} is disabled`, { id })
      const issued = await mint(device)
      // A refresh retires the token it was made from; connections opened with it stay up.
      if ('token' in credentials) await tokens.delete(hashToken(credentials.token))
      return issued
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
