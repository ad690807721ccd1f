// Which topics a connected identity may use (docs/mqtt.md, Topics). Pure functions: no aedes, no I/O.

export type Identity =
  | { readonly kind: 'device', readonly deviceId: string, readonly groups: readonly string[] }
  | { readonly kind: 'anonymous' }

export type UplinkKind = 'telemetry' | 'events'

/** What a device's publish to `topic` is, or undefined when the device may not publish there. */
export type PublishRoute = { readonly type: 'uplink', readonly kind: UplinkKind } | { readonly type: 'ack' }

const STREAM = /^[A-Za-z0-9_.-]{1,64}$/

export function devicePublishRoute (deviceId: string, topic: string): PublishRoute | undefined {
  const own = `devices/${deviceId}/`
  if (!topic.startsWith(own)) return undefined
  const rest = topic.slice(own.length)
  if (rest === 'telemetry') return { type: 'uplink', kind: 'telemetry' }
  if (rest.startsWith('telemetry/') && STREAM.test(rest.slice('telemetry/'.length))) return { type: 'uplink', kind: 'telemetry' }
  if (rest === 'events') return { type: 'uplink', kind: 'events' }
  if (rest === 'ack') return { type: 'ack' }
  return undefined
}

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
