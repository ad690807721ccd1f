// One MQTT 3.1.1 / 5 PUBLISH packet (no properties, no retain, no dup) serialized once for a broadcast: every
// local subscriber gets the same bytes, only the 2-byte packet id differs at QoS 1. aedes would build a packet
// object, defer it with setImmediate and serialize it again per client; at tens of thousands of clients per node
// that per-client work is most of a broadcast's time.

export interface PublishFrame {
  readonly qos: 0 | 1
  /** The bytes to write; at QoS 1 a copy with `messageId` filled in. */
  bytes (messageId?: number): Buffer
}

function remainingLength (n: number): number[] {
  const out: number[] = []
  do {
    let digit = n % 128
    n = Math.floor(n / 128)
    if (n > 0) digit |= 0x80
    out.push(digit)
  } while (n > 0)
  return out
}

/** MQTT 5 needs a property length (0) after the packet id; 3.1.1 has none. */
export function publishFrame (topic: string, payload: Buffer, qos: 0 | 1, protocolVersion = 4): PublishFrame {
  const name = Buffer.from(topic, 'utf8')
  const props = protocolVersion === 5 ? 1 : 0
  const rest = 2 + name.length + (qos === 1 ? 2 : 0) + props + payload.length
  const len = remainingLength(rest)
  const frame = Buffer.allocUnsafe(1 + len.length + rest)
  let o = 0
  frame[o++] = 0x30 | (qos << 1)
  for (const b of len) frame[o++] = b
  o = frame.writeUInt16BE(name.length, o)
  o += name.copy(frame, o)
  const idAt = o
  if (qos === 1) o = frame.writeUInt16BE(0, o)
  if (props === 1) frame[o++] = 0
  payload.copy(frame, o)
  return {
    qos,
    bytes (messageId) {
      if (qos === 0) return frame
      const copy = Buffer.from(frame)
      copy.writeUInt16BE(messageId ?? 0, idAt)
      return copy
    }
  }
}
