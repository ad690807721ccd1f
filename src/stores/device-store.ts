// The device registry's storage port. Implementations: memory-device-store.ts, redis-device-store.ts.
// Both must pass test/contract/device-store.spec.ts.

export interface Device {
  readonly id: string
  readonly groups: readonly string[]
  readonly metadata: Readonly<Record<string, unknown>>
  /** The stored form of the device secret (a digest), see src/auth/secret-hash.ts. */
  readonly secretHash: string
  readonly enabled: boolean
  readonly createdAt: number
  readonly updatedAt: number
  /** Last revoke (epoch ms): client certificates issued until then are refused. */
  readonly revokedAt?: number
}

export interface DevicePatch {
  readonly groups?: readonly string[]
  readonly metadata?: Readonly<Record<string, unknown>>
  readonly secretHash?: string
  readonly enabled?: boolean
  readonly revokedAt?: number
}

export interface DeviceListQuery {
  /** Return devices whose id sorts after this one (exclusive). */
  readonly after?: string
  readonly limit: number
  readonly group?: string
}

export interface DevicePage {
  readonly devices: readonly Device[]
  /** Pass as `after` for the next page; undefined on the last page. */
  readonly next: string | undefined
}

export interface DeviceStore {
  /** Stores a new device; resolves false (and writes nothing) when the id is taken. */
  create (device: Device): Promise<boolean>
  /**
   * create() for many devices with distinct ids, in few round trips: resolves, in input order, whether each was
   * created. Each device is written whole or not at all; the call may stop part way (Redis unreachable) and reject,
   * so a caller that must report exactly uses createMany on chunks it can account for one by one.
   */
  createMany (devices: readonly Device[]): Promise<boolean[]>
  get (id: string): Promise<Device | undefined>
  /** Devices ordered by id. */
  list (query: DeviceListQuery): Promise<DevicePage>
  /** Applies the patch atomically; undefined when the device does not exist. */
  update (id: string, patch: DevicePatch, now: number): Promise<Device | undefined>
  delete (id: string): Promise<boolean>
  /** Sets the secret's stored form to `next` only if it is still `expected` (a rotation meanwhile wins); resolves whether it did. */
  replaceSecretHash (id: string, expected: string, next: string): Promise<boolean>
  count (): Promise<number>
}

export function applyPatch (device: Device, patch: DevicePatch, now: number): Device {
  return {
    ...device,
    ...(patch.groups !== undefined && { groups: [...patch.groups] }),
    ...(patch.metadata !== undefined && { metadata: { ...patch.metadata } }),
    ...(patch.secretHash !== undefined && { secretHash: patch.secretHash }),
    ...(patch.enabled !== undefined && { enabled: patch.enabled }),
    ...(patch.revokedAt !== undefined && { revokedAt: patch.revokedAt }),
    updatedAt: now
  }
}
