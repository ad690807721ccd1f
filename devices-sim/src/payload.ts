// Uplink payloads and downlink parsing: the wire formats the simulator writes and reads.

/** {"seq":n,"ts":ms,"dev":"id","pad":"…"} padded with "x" to `bytes` (never shorter than the fields). */
export function telemetryPayload (deviceId: string, seq: number, ts: number, bytes: number): Buffer {
  const head = `{"seq":${seq},"ts":${ts},"dev":"${deviceId}","pad":"`
  return Buffer.from(head + 'x'.repeat(Math.max(0, bytes - head.length - 2)) + '"}')
}

export interface Downlink {
  /** Per-device sequence on devices/{id}/down; the push id (a string) on broadcasts. */
  readonly id: number | string
  readonly pushId: string
  readonly sentAt: number
}

/** The downlink fields, or undefined when the payload is not the platform's downlink JSON. */
export function parseDownlink (payload: Buffer): Downlink | undefined {
  let v: unknown
  try {
    v = JSON.parse(payload.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null) return undefined
  const { id, pushId, sentAt } = v as Record<string, unknown>
  if ((typeof id !== 'number' && typeof id !== 'string') || typeof pushId !== 'string' || typeof sentAt !== 'number') return undefined
  return { id, pushId, sentAt }
}

/** [1,2,3,5,7,8] → [[1,3],[5,5],[7,8]]: acknowledged sequence numbers, compact for the report. */
export function toRanges (values: readonly number[]): Array<[number, number]> {
  const sorted = [...new Set(values)].sort((a, b) => a - b)
  const out: Array<[number, number]> = []
  for (const v of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && v === last[1] + 1) last[1] = v
    else out.push([v, v])
  }
  return out
}
