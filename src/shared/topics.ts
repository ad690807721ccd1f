// What a device's topics mean (docs/mqtt.md, Topics), for the broker's ACL and for the uplink records alike.

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
