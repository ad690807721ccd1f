import { generateToken, hashToken } from '../auth/device-token.ts'
import { generateSecret, hashSecret, verifySecret } from '../auth/secret-hash.ts'
import { PushlineError } from '../shared/errors.ts'
import type { Device, DeviceStore } from '../stores/device-store.ts'
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

export interface DeviceServiceDeps {
  readonly devices: DeviceStore
  readonly tokens: TokenStore
  readonly connections: ConnectionControl
  readonly assigner: NodeAssigner
  readonly tokenTtlMs: number
  readonly secretHashCost: number
  readonly now?: () => number
  /**
   * Waits until the writes are on the Redis replicas (replica-wait.ts) before a creation, deletion, disabling, secret
   * rotation or revocation answers: a failover must not bring back what the operator was told is gone. Absent in memory.
   */
  readonly confirmWrites?: () => Promise<void>
}

export interface DeviceService {
  create (input: NewDevice): Promise<CreatedDevice>
  get (id: string): Promise<DeviceView>
  list (query: { after?: string, limit: number, group?: string }): Promise<{ devices: DeviceView[], next: string | undefined }>
  remove (id: string): Promise<void>
  setEnabled (id: string, enabled: boolean): Promise<DeviceView>
  rotateSecret (id: string): Promise<CreatedDevice>
  /** Kills every token of the device and ends its live connection. */
  revoke (id: string): Promise<number>
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
      await deps.confirmWrites?.()
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
      const secret = generateSecret()
      const d = await devices.update(id, { secretHash: await hashSecret(secret, deps.secretHashCost) }, now())
      if (d === undefined) throw notFound(id)
      await deps.confirmWrites?.()
      return { id, secret, groups: [...d.groups] }
    },

    async revoke (id) {
      if (await devices.get(id) === undefined) throw notFound(id)
      const revoked = await cutOff(id, 'revoked')
      // A revocation a failover undid would bring a stolen token back.
      await deps.confirmWrites?.()
      return revoked
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
