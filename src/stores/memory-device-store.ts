import { applyPatch, type Device, type DeviceListQuery, type DevicePage, type DevicePatch, type DeviceStore } from './device-store.ts'

export function createMemoryDeviceStore (): DeviceStore {
  const devices = new Map<string, Device>()

  return {
    async create (device) {
      if (devices.has(device.id)) return false
      devices.set(device.id, structuredClone(device))
      return true
    },
    async createMany (list) {
      return list.map((device) => {
        if (devices.has(device.id)) return false
        devices.set(device.id, structuredClone(device))
        return true
      })
    },
    async get (id) {
      const d = devices.get(id)
      return d === undefined ? undefined : structuredClone(d)
    },
    async list (query: DeviceListQuery): Promise<DevicePage> {
      // Sorting on every call is fine for the embedded mode's fleet sizes; the Redis store keeps a sorted index.
      const ids = [...devices.keys()].sort()
      const out: Device[] = []
      for (const id of ids) {
        if (query.after !== undefined && id <= query.after) continue
        const d = devices.get(id) as Device
        if (query.group !== undefined && !d.groups.includes(query.group)) continue
        if (out.length === query.limit) return { devices: out, next: out[out.length - 1]?.id }
        out.push(structuredClone(d))
      }
      return { devices: out, next: undefined }
    },
    async update (id: string, patch: DevicePatch, now: number) {
      const d = devices.get(id)
      if (d === undefined) return undefined
      const updated = applyPatch(d, patch, now)
      devices.set(id, updated)
      return structuredClone(updated)
    },
    async delete (id) {
      return devices.delete(id)
    },
    async replaceSecretHash (id, expected, next) {
      const d = devices.get(id)
      if (d === undefined || d.secretHash !== expected) return false
      devices.set(id, { ...d, secretHash: next })
      return true
    },
    async count () {
      return devices.size
    }
  }
}
