// Which topics a connected identity may use (docs/mqtt.md, Topics). Pure functions: no aedes, no I/O.

import { devicePublishRoute } from '../shared/topics.ts'

export type Identity =
  | { readonly kind: 'device', readonly deviceId: string, readonly groups: readonly string[] }
  | { readonly kind: 'anonymous' }

export function maySubscribe (identity: Identity, filter: string): boolean {
  if (identity.kind === 'anonymous') return !filter.startsWith('$')
  // Exact topics only: wildcards would let a device read other devices' traffic and cost a PSUBSCRIBE per device in Redis.
  if (filter === `devices/${identity.deviceId}/down` || filter === 'broadcast/all') return true
  const prefix = 'broadcast/groups/'
  return filter.startsWith(prefix) && identity.groups.includes(filter.slice(prefix.length))
}

export function mayPublish (identity: Identity, topic: string): boolean {
  if (topic.startsWith('$')) return false
  if (identity.kind === 'anonymous') return true
  return devicePublishRoute(identity.deviceId, topic) !== undefined
}
