import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { NodeRecord, NodeRegistry } from '../../src/stores/node-registry.ts'
import { eventually } from '../helpers/eventually.ts'
import { manualClock, type ManualClock } from '../helpers/clock.ts'

/**
 * `build` gives the registry `clock` where its leases run on a clock of the process (memory); a registry whose
 * leases are Redis TTLs ignores it, and the suite polls until Redis has expired them (a short lease, a generous bound).
 */
export function nodeRegistrySpec (name: string, build: (t: TestContext, clock: ManualClock) => Promise<NodeRegistry>): void {
  const SHORT = 50
  const LONG = 600_000
  /** Lets a SHORT lease given now run out: moves the clock, then waits until `id` is dead. */
  const expire = async (reg: NodeRegistry, clock: ManualClock, id: string): Promise<void> => {
    clock.advance(SHORT)
    assert.ok(await eventually(async () => (await reg.dead()).includes(id)), `${id}'s lease of ${SHORT} ms ran out`)
  }

  const record = (nodeId: string, connections = 0): NodeRecord => ({
    nodeId, mqtt: `mqtt://h:${nodeId.length}`, ws: 'ws://h/mqtt', http: 'http://h', connections, weight: 1, draining: false, startedAt: 1, heartbeatAt: 2
  })

  test(`${name}: a node that heartbeats is listed with its record`, { timeout: 120_000 }, async (t) => {
    const reg = await build(t, manualClock())
    await reg.heartbeat(record('b', 3), 10_000)
    await reg.heartbeat(record('a', 1), 10_000)
    assert.deepEqual(await reg.list(), [record('a', 1), record('b', 3)])
    assert.deepEqual(await reg.get('b'), record('b', 3))
    assert.deepEqual(await reg.dead(), [])
  })

  test(`${name}: a node whose record expired is dead until forgotten`, { timeout: 120_000 }, async (t) => {
    const clock = manualClock()
    const reg = await build(t, clock)
    await reg.heartbeat(record('gone'), SHORT)
    await reg.heartbeat(record('alive'), LONG)
    await expire(reg, clock, 'gone')
    assert.deepEqual((await reg.list()).map((r) => r.nodeId), ['alive'])
    assert.equal(await reg.get('gone'), undefined)
    assert.deepEqual(await reg.dead(), ['gone'])
    await reg.forget('gone')
    assert.deepEqual(await reg.dead(), [])
  })

  test(`${name}: a heartbeat refreshes the record and its lease`, { timeout: 120_000 }, async (t) => {
    const clock = manualClock()
    const reg = await build(t, clock)
    await reg.heartbeat(record('n', 1), SHORT)
    await reg.heartbeat(record('n', 2), LONG)
    // Marker: a SHORT lease given after n's first one; once it has run out, so has n's first lease.
    await reg.heartbeat(record('marker'), SHORT)
    await expire(reg, clock, 'marker')
    assert.equal((await reg.get('n'))?.connections, 2)
    assert.deepEqual(await reg.dead(), ['marker'])
    // A dead node that heartbeats again is live again.
    await reg.heartbeat(record('marker', 5), LONG)
    assert.equal((await reg.get('marker'))?.connections, 5)
    assert.deepEqual(await reg.dead(), [])
  })

  test(`${name}: a drain order stays until cleared and is forgotten with the node`, { timeout: 120_000 }, async (t) => {
    const reg = await build(t, manualClock())
    assert.equal(await reg.drainRequested('n'), false)
    await reg.setDrain('n', true)
    assert.equal(await reg.drainRequested('n'), true)
    await reg.setDrain('n', false)
    assert.equal(await reg.drainRequested('n'), false)
    await reg.setDrain('n', true)
    await reg.forget('n')
    assert.equal(await reg.drainRequested('n'), false)
  })

  test(`${name}: a heartbeat says whether the record was still live: false for a new node and after an expiry`, { timeout: 120_000 }, async (t) => {
    const clock = manualClock()
    const reg = await build(t, clock)
    assert.equal(await reg.heartbeat(record('late'), SHORT), false, 'a new node')
    assert.equal(await reg.heartbeat(record('late'), SHORT), true, 'a refresh in time')
    await expire(reg, clock, 'late')
    assert.equal(await reg.heartbeat(record('late'), LONG), false, 'its record had expired: it was late')
  })

  test(`${name}: a dead node is forgotten by a survivor only while its record is expired, and its drain order stays`, { timeout: 120_000 }, async (t) => {
    const clock = manualClock()
    const reg = await build(t, clock)
    await reg.heartbeat(record('late'), SHORT)
    await reg.setDrain('late', true)
    await expire(reg, clock, 'late')
    // It came back before the survivor's cleanup: it keeps its membership.
    await reg.heartbeat(record('late'), SHORT)
    assert.equal(await reg.forgetDead('late'), false)
    await expire(reg, clock, 'late')
    assert.equal(await reg.forgetDead('late'), true)
    assert.equal(await reg.forgetDead('late'), false, 'one survivor forgets it')
    assert.deepEqual(await reg.dead(), [])
    assert.equal(await reg.drainRequested('late'), true, 'the drain order is the node\'s, not its record\'s')
    await reg.heartbeat(record('late'), LONG)
    assert.deepEqual((await reg.list()).map((r) => r.nodeId), ['late'])
    assert.equal(await reg.drainRequested('late'), true)
  })
}
