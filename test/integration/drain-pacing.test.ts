import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { startTestCluster } from '../helpers/cluster.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'

// PUSHLINE_DRAIN_RATE end to end: a draining broker process closes its connections in waves of rate/10 every
// 100 ms, or one every 1000/rate ms under 10 per second (src/cluster/cluster-member.ts), not all at once. The checks hold on a busy machine: a slow node only
// stretches the drain, which makes the steps easier to see and the lower bound on its length easier to meet.

const WAVE_MS = 100

/** The node's own count of live connections, read from its /metrics. */
async function connections (httpPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('pushline_connections ') || l.startsWith('pushline_connections{'))
  assert.ok(line !== undefined, 'pushline_connections is exported')
  return Number(line.split(' ').pop())
}

/** The node's JSON log lines with this event. */
function logEvents (stdout: string, event: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === event)
}

interface DrainRun {
  /** From the drain order to the last device's close. */
  readonly took: number
  /** Every connection count a read of /metrics caught, in order. */
  readonly seen: number[]
  readonly node: { readonly nodeId: string, readonly stdout: () => string }
  readonly nodesAfter: () => Promise<Array<{ nodeId: string, draining: boolean }>>
}

/** One node with `devices` connections at PUSHLINE_DRAIN_RATE=`rate`, drained by an operator's order. */
async function drain (t: TestContext, devices: number, rate: number): Promise<DrainRun> {
  // The default heartbeat: a shorter one lets a node on a busy machine miss 1.5 periods and count as dead, and then
  // the token route has no node to name.
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: 2000, nodeEnv: { PUSHLINE_DRAIN_RATE: String(rate) } })
  const node = cluster.nodes[0] as (typeof cluster.nodes)[number]
  const clients: MqttClient[] = []
  for (let i = 0; i < devices; i++) {
    const id = `drain-pace-${i}`
    clients.push(await connectDevice(t, node.mqttUrl, id, (await cluster.api.provision(id)).token))
  }
  await waitUntil(`the node to count ${devices} connections`, async () => await connections(node.httpPort) === devices)
  const closed = Promise.all(clients.map(async (c) => await new Promise<void>((resolve) => c.once('close', () => resolve()))))

  // The node's count, read over and over until it reaches 0: every value it went through that a read caught.
  const seen: number[] = []
  const state = { reading: true }
  const reader = (async () => {
    while (state.reading) {
      const n = await connections(node.httpPort)
      seen.push(n)
      if (n === 0) return
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  t.after(() => { state.reading = false })

  const askedAt = Date.now()
  const res = await cluster.api.api('POST', `/v1/admin/nodes/${node.nodeId}/drain`)
  assert.equal(res.status, 202, JSON.stringify(res.body))
  await bounded('every device to be closed by the drain', closed)
  const took = Date.now() - askedAt
  await bounded('the node to report 0 connections', reader)
  await waitUntil('the drain_done log line', () => logEvents(node.stdout(), 'drain_done').length === 1)
  const nodesAfter = async (): Promise<Array<{ nodeId: string, draining: boolean }>> =>
    (await cluster.api.api('GET', '/v1/admin/nodes')).body.nodes as Array<{ nodeId: string, draining: boolean }>
  return { took, seen, node, nodesAfter }
}

const DEVICES = 30
const RATE = 10

test(`a draining node closes its connections at PUSHLINE_DRAIN_RATE: ${DEVICES} devices at ${RATE} per second go in steps, over at least ${DEVICES / RATE} s`, { timeout: 120_000 }, async (t) => {
  const { took, seen, node, nodesAfter } = await drain(t, DEVICES, RATE)

  // The drain starts after it was asked for, and its last wave comes (DEVICES / perWave) periods after its start.
  // A timer may fire a millisecond early: 1 ms per wave is allowed for that; lateness is no part of the check.
  const perWave = Math.max(1, Math.round(RATE * WAVE_MS / 1000))
  const waves = Math.ceil(DEVICES / perWave)
  assert.ok(took >= waves * (WAVE_MS - 1), `${DEVICES} devices closed ${took} ms after the drain was asked for: under ${waves} waves of ${WAVE_MS} ms`)

  assert.deepEqual([...seen].sort((a, b) => b - a), seen, `the count only goes down: ${seen.join(',')}`)
  const between = new Set(seen.filter((n) => n > 0 && n < DEVICES))
  assert.ok(between.size >= 1, `the node reported the drain in steps, not ${DEVICES} then 0: ${[...new Set(seen)].join(',')}`)
  assert.equal(seen[seen.length - 1], 0)

  const [start] = logEvents(node.stdout(), 'drain_start')
  assert.deepEqual([start?.sessions, start?.rate], [DEVICES, RATE], 'drain_start names the sessions to close and the rate')
  assert.equal((await nodesAfter()).find((n) => n.nodeId === node.nodeId)?.draining, true, 'the node stays draining once empty')
})

const FEW = 6
const SLOW = 2

test(`a rate under 10 per second is kept: ${FEW} devices at ${SLOW} per second take at least ${(FEW - 1) / SLOW} s from the drain order`, { timeout: 120_000 }, async (t) => {
  const { took, seen } = await drain(t, FEW, SLOW)
  // N devices at rate R: the first may go at once, each of the other N - 1 at least 1/R s after the one before.
  // A lower bound only: a slow machine stretches the drain.
  assert.ok(took >= (FEW - 1) * 1000 / SLOW, `${FEW} devices at ${SLOW}/s closed ${took} ms after the drain was asked for`)
  assert.equal(seen[seen.length - 1], 0)
})
