import type { BroadcastCounts } from '../../src/push/broadcast-counts.ts'

// A BroadcastCounts that records each call in order (as [call, pushId, deviceId]) instead of counting in a store.

export function recordingBroadcastCounts (): { counts: BroadcastCounts, counted: Array<[string, string, string]> } {
  const counted: Array<[string, string, string]> = []
  const counts: BroadcastCounts = {
    sent (pushId, deviceId) { counted.push(['sent', pushId, deviceId]) },
    got (pushId, deviceId) { counted.push(['got', pushId, deviceId]) },
    async acked (pushId, deviceId) { counted.push(['acked', pushId, deviceId]) },
    async flush () {}
  }
  return { counts, counted }
}
