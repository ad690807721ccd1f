// The scenario actions the coordinator runs against a connected fleet: operator pushes through the admin API,
// killing a node, waiting. Each returns a result for the report.

import { exec } from 'node:child_process'
import { SimError } from './errors.ts'
import type { HttpApi, PushStatus } from './http-api.ts'
import type { Snapshot } from './metrics.ts'
import type { Action } from './scenario.ts'

export interface ActionContext {
  readonly api: HttpApi
  readonly deviceIds: readonly string[]
  /** Device ids per group. */
  readonly groups: ReadonlyMap<string, readonly string[]>
  /** Devices the run expects to be online (provisioned ones). */
  readonly fleet: () => number
  readonly current: () => Snapshot
  /** Announces `count` targeted downlinks to every device, before they are pushed. */
  readonly expect: (count: number) => void
  readonly killNode: string | undefined
  readonly killPid: number | undefined
  readonly killCommand: string | undefined
  readonly log: (line: string) => void
}

export type ActionResult = Record<string, unknown> & { readonly do: Action['do'], readonly ok: boolean }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until check() holds or the time is up; returns whether it held. */
export async function until (check: () => boolean | Promise<boolean>, timeoutMs: number, every = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > end) return false
    await sleep(every)
  }
}

async function broadcast (ctx: ActionContext, a: Extract<Action, { do: 'broadcast' }>): Promise<ActionResult> {
  const sent: Array<{ pushId: string, expected: number, at: number }> = []
  for (let i = 0; i < a.count; i++) {
    if (i > 0) await sleep(a.intervalMs)
    const expected = a.group === undefined ? ctx.current().connected : (ctx.groups.get(a.group)?.length ?? 0)
    const at = Date.now()
    const pushId = await ctx.api.push({ ...(a.group === undefined ? { all: true } : { group: a.group }), qos: a.qos, data: { sim: 'broadcast', n: i } })
    sent.push({ pushId, expected, at })
  }
  await until(() => sent.every((s) => (ctx.current().broadcasts[s.pushId]?.received ?? 0) >= s.expected), a.timeoutMs)
  const pushes = sent.map((s) => {
    const t = ctx.current().broadcasts[s.pushId] ?? { received: 0, maxMs: 0 }
    // A device that got it twice (a takeover race) counts twice; "missing" is the shortfall.
    return { pushId: s.pushId, expected: s.expected, received: t.received, missing: Math.max(0, s.expected - t.received), allReceivedMs: t.received >= s.expected ? t.maxMs : null }
  })
  const ok = pushes.every((p) => p.missing === 0)
  ctx.log(`broadcast: ${pushes.map((p) => `${p.received}/${p.expected}${p.allReceivedMs === null ? '' : ` in ${p.allReceivedMs} ms`}`).join(', ')}`)
  return { do: 'broadcast', ok, group: a.group ?? null, pushes }
}

async function push (ctx: ActionContext, a: Extract<Action, { do: 'push' }>): Promise<ActionResult> {
  // One push carries at most 100,000 device ids (docs/push.md).
  if (ctx.deviceIds.length > 100_000) throw new SimError('SIM_ERR_SCENARIO', `push: ${ctx.deviceIds.length} devices, one push takes at most 100,000`)
  const rounds: Array<Record<string, unknown>> = []
  for (let i = 0; i < a.count; i++) {
    if (i > 0) await sleep(a.intervalMs)
    ctx.expect(1)
    const total = ctx.deviceIds.length
    const t0 = performance.now()
    const pushId = await ctx.api.push({ deviceIds: ctx.deviceIds, qos: a.qos, data: { sim: 'push', n: i } })
    const acceptMs = performance.now() - t0
    let status: PushStatus | undefined
    let doneMs: number | null = null
    let deliveredMs: number | null = null
    let ackedMs: number | null = null
    await until(async () => {
      status = await ctx.api.pushStatus(pushId)
      const now = performance.now() - t0
      if (doneMs === null && status.progress?.done === true) doneMs = now
      if (deliveredMs === null && status.counts.delivered + status.counts.acked >= total) deliveredMs = now
      if (ackedMs === null && status.counts.acked >= total) ackedMs = now
      return ackedMs !== null
    }, a.timeoutMs, 200)
    const r = {
      pushId,
      devices: total,
      acceptMs: Math.round(acceptMs),
      processedMs: doneMs === null ? null : Math.round(doneMs),
      allDeliveredMs: deliveredMs === null ? null : Math.round(deliveredMs),
      allAckedMs: ackedMs === null ? null : Math.round(ackedMs),
      pushesPerSecond: deliveredMs === null ? null : Math.round(total / (deliveredMs / 1000)),
      counts: status?.counts ?? null
    }
    ctx.log(`push ${pushId}: ${total} devices, accepted in ${r.acceptMs} ms, all delivered ${r.allDeliveredMs ?? 'not'} ms, acked ${r.allAckedMs ?? 'not'} ms`)
    rounds.push(r)
  }
  return { do: 'push', ok: rounds.every((r) => r.allAckedMs !== null), rounds }
}

async function killNode (ctx: ActionContext, a: Extract<Action, { do: 'kill-node' }>): Promise<ActionResult> {
  const before = ctx.current()
  const nodeId = a.nodeId ?? ctx.killNode ?? Object.entries(before.nodes).sort((x, y) => y[1] - x[1])[0]?.[0]
  if (nodeId === undefined) throw new SimError('SIM_ERR_SCENARIO', 'kill-node: no device is connected to any node')
  const devicesOnNode = before.nodes[nodeId] ?? 0
  const pid = a.pid ?? ctx.killPid
  const command = a.command ?? ctx.killCommand
  const reconnectsBefore = before.counters.reconnects
  const t0 = performance.now()
  if (pid !== undefined) {
    process.kill(pid, 'SIGKILL')
  } else if (command !== undefined) {
    await new Promise<void>((resolve, reject) => exec(command.replaceAll('{nodeId}', nodeId), (err) => { if (err === null) resolve(); else reject(new SimError('SIM_ERR_SCENARIO', `kill-node: ${err.message}`)) }))
  } else {
    throw new SimError('SIM_ERR_SCENARIO', 'kill-node needs a pid or a command (scenario fields, or --kill-pid / --kill-command)')
  }
  ctx.log(`kill-node: killed ${nodeId} (${devicesOnNode} devices on it)`)
  const back = await until(() => {
    const s = ctx.current()
    return s.connected >= ctx.fleet() && (s.nodes[nodeId] ?? 0) === 0
  }, a.timeoutMs)
  const allBackMs = back ? Math.round(performance.now() - t0) : null
  const after = ctx.current()
  ctx.log(`kill-node: ${back ? `every device back in ${allBackMs} ms` : `not every device back within ${a.timeoutMs} ms (${after.connected}/${ctx.fleet()})`}`)
  return { do: 'kill-node', ok: back, nodeId, devicesOnNode, allBackMs, connectedAfter: after.connected, reconnects: after.counters.reconnects - reconnectsBefore, nodesAfter: after.nodes }
}

export async function runAction (ctx: ActionContext, a: Action): Promise<ActionResult> {
  switch (a.do) {
    case 'wait':
      await sleep(a.ms)
      return { do: 'wait', ok: true, ms: a.ms }
    case 'wait-connected': {
      const t0 = performance.now()
      const ok = await until(() => ctx.current().connected >= ctx.fleet(), a.timeoutMs)
      return { do: 'wait-connected', ok, ms: Math.round(performance.now() - t0) }
    }
    case 'broadcast':
      return await broadcast(ctx, a)
    case 'push':
      return await push(ctx, a)
    case 'kill-node':
      return await killNode(ctx, a)
  }
}
