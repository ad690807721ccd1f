// What a device's topics mean (docs/mqtt.md, Topics), for the broker's ACL and for the uplink records alike.

export type UplinkKind = 'telemetry' | 'events'

/** What a device's publish to `topic` is, or undefined when the device may not publish there. */
export type PublishRoute = { readonly type: 'uplink', readonly kind: UplinkKind } | { readonly type: 'ack' }

const STREAM = /^[A-Za-z0-9_.-]{1,64}$/

// One answer object per route, shared: the ACL asks on every uplink.
const TELEMETRY: PublishRoute = Object.freeze({ type: 'uplink', kind: 'telemetry' })
const EVENTS: PublishRoute = Object.freeze({ type: 'uplink', kind: 'events' })
const ACK: PublishRoute = Object.freeze({ type: 'ack' })
const PREFIX = 'devices/'

export function devicePublishRoute (deviceId: string, topic: string): PublishRoute | undefined {
  // `devices/{deviceId}/` compared in place rather than built per call.
  const restAt = PREFIX.length + deviceId.length + 1
  if (!topic.startsWith(PREFIX) || !topic.startsWith(deviceId, PREFIX.length) || topic.charCodeAt(restAt - 1) !== 0x2f) return undefined
  const rest = topic.slice(restAt)
  if (rest === 'telemetry') return TELEMETRY
  if (rest.startsWith('telemetry/') && STREAM.test(rest.slice('telemetry/'.length))) return TELEMETRY
  if (rest === 'events') return EVENTS
  if (rest === 'ack') return ACK
  return undefined
}
