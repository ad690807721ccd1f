import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { MqttClient } from 'mqtt'
import { eventually, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, type TestPlatform } from '../helpers/platform.ts'

// PUSHLINE_HISTORY_MAX_MESSAGES end to end (docs/push.md, History): a device's history keeps its last N downlinks,
// the oldest go first; a device coming back, or pulling, catches up only what is kept; the receipts of the entries
// that went never become delivered and end `expired` at their ttl. The age limit (60 s at least) is tested on an
// injected clock in test/contract/history-store.spec.ts.

const KEPT = 3
const uid = (): string => randomUUID().slice(0, 8)

async function push (p: TestPlatform, deviceId: string, data: unknown, ttlSeconds: number): Promise<string> {
  const res = await p.api('POST', '/v1/admin/push', { deviceId, data, ttlSeconds })
  assert.equal(res.status, 202, JSON.stringify(res.body))
  return res.body.pushId as string
}

async function counts (p: TestPlatform, pushId: string): Promise<Record<string, number>> {
  const res = await p.api('GET', `/v1/admin/push/${pushId}`)
  assert.equal(res.status, 200, JSON.stringify(res.body))
  return res.body.counts as Record<string, number>
}

async function waitForCounts (p: TestPlatform, pushIds: readonly string[], want: Record<string, number>): Promise<void> {
  const expected = JSON.stringify({ queued: 0, sent: 0, delivered: 0, acked: 0, expired: 0, failed: 0, ...want })
  for (const pushId of pushIds) {
    let last: unknown
    const ok = await eventually(async () => { last = await counts(p, pushId); return JSON.stringify(last) === expected }, 60_000)
    assert.ok(ok, `push ${pushId}: expected counts ${expected}, got ${JSON.stringify(last)}`)
  }
}

/** Five pushes to an offline device: the first two with a short ttl (they leave the history before it ends), the last three kept. */
async function fivePushes (p: TestPlatform, id: string): Promise<{ dropped: string[], kept: string[] }> {
  const dropped = [await push(p, id, 'd1', 2), await push(p, id, 'd2', 2)]
  const kept = [await push(p, id, 'k3', 600), await push(p, id, 'k4', 600), await push(p, id, 'k5', 600)]
  const history = await p.api('GET', `/v1/admin/devices/${id}/messages?limit=100`)
  assert.equal(history.status, 200, JSON.stringify(history.body))
  assert.deepEqual(history.body.messages.map((m: { id: number, pushId: string }) => [m.id, m.pushId]), kept.map((pushId, i) => [i + 3, pushId]),
    `the history holds the last ${KEPT} entries, the oldest went first`)
  return { dropped, kept }
}

test(`with PUSHLINE_HISTORY_MAX_MESSAGES=${KEPT} the oldest entries go: a device that reconnects gets only the kept ones, and the receipts of the others end expired`, { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_HISTORY_MAX_MESSAGES: String(KEPT) } })
  const id = `hist-${uid()}`
  const { token } = await p.provision(id)
  const { dropped, kept } = await fivePushes(p, id)

  const device: MqttClient = await connectDevice(t, p.mqttUrl, id, token)
  const got: Array<{ id: number, pushId: string }> = []
  device.on('message', (_topic, payload) => { got.push(JSON.parse(payload.toString()) as { id: number, pushId: string }) })
  // Catch-up writes a device's entries in id order in one pass: entries 1 and 2, had they been kept, would have come
  // before entry 3, so the three kept ones are the marker.
  await waitUntil('the kept entries to be caught up', () => got.length >= KEPT)
  assert.deepEqual(got.map((m) => [m.id, m.pushId]), kept.map((pushId, i) => [i + 3, pushId]), 'only the kept entries, in id order')
  const marker = await push(p, id, 'marker', 600)
  await waitUntil('a push after the catch-up', () => got.some((m) => m.pushId === marker))
  assert.deepEqual(got.map((m) => m.id), [3, 4, 5, 6])

  await waitForCounts(p, [...kept, marker], { delivered: 1 })
  // The dropped entries' receipts stay queued (nothing can deliver them any more) until their ttl, then expire.
  await waitForCounts(p, dropped, { expired: 1 })
  const history = await p.api('GET', `/v1/admin/devices/${id}/messages?limit=100`)
  assert.deepEqual(history.body.messages.map((m: { id: number }) => m.id), [4, 5, 6], 'the marker pushed the oldest kept entry out')
})

test(`with PUSHLINE_HISTORY_MAX_MESSAGES=${KEPT} a device that pulls its missed downlinks gets only the kept ones`, { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_HISTORY_MAX_MESSAGES: String(KEPT) } })
  const id = `histpull-${uid()}`
  const { token } = await p.provision(id)
  const { dropped, kept } = await fivePushes(p, id)

  const res = await p.api('GET', '/v1/devices/me/messages?after=0&limit=100', undefined, { authorization: `Bearer ${token}` })
  assert.equal(res.status, 200, JSON.stringify(res.body))
  assert.deepEqual(res.body.messages.map((m: { id: number, pushId: string }) => [m.id, m.pushId]), kept.map((pushId, i) => [i + 3, pushId]))
  await waitForCounts(p, kept, { delivered: 1 })
  await waitForCounts(p, dropped, { expired: 1 })
})
