import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { NodeRecord, NodeRegistry } from '../../src/stores/node-registry.ts'

export function nodeRegistrySpec (name: string, build: (t: TestContext) => Promise<NodeRegistry>): void {
  const record = (nodeId: string, connections = 0): NodeRecord => ({
    nodeId, mqtt: `mqtt://h:${nodeId.length}`, ws: 'ws://h/mqtt', http: 'http://h', connections, weight: 1, draining: false, startedAt: 1, heartbeatAt: 2
  })

  test(`${name}: a node that heartbeats is listed with its record`, { timeout: 120_000 }, async (t) => {
    const reg = await build(t)
    await reg.heartbeat(record('b', 3), 10_000)
    await reg.heartbeat(record('a', 1), 10_000)
    assert.deepEqual(await reg.list(), [record('a', 1), record('b', 3)])
    assert.deepEqual(await reg.get('b'), record('b', 3))
    assert.deepEqual(await reg.dead(), [])
  })

  test(`${name}: a node whose record expired is dead until forgotten`, { timeout: 120_000 }, async (t) => {
    const reg = await build(t)
    await reg.heartbeat(record('gone'), 100)
    await reg.heartbeat(record('alive'), 10_000)
    await new Promise((resolve) => setTimeout(resolve, 250))
    assert.deepEqual((await reg.list()).map((r) => r.nodeId), ['alive'])
    assert.equal(await reg.get('gone'), undefined)
    assert.deepEqual(await reg.dead(), ['gone'])
    await reg.forget('gone')
    assert.deepEqual(await reg.dead(), [])
  })

  test(`${name}: a heartbeat refreshes the record`, { timeout: 120_000 }, async (t) => {
    const reg = await build(t)
    await reg.heartbeat(record('n', 1), 150)
    await new Promise((resolve) => setTimeout(resolve, 100))
    await reg.heartbeat(record('n', 2), 150)
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal((await reg.get('n'))?.connections, 2)
  })

  test(`${name}: a drain order stays until cleared and is forgotten with the node`, { timeout: 120_000 }, async (t) => {
    const reg = await build(t)
    assert.equal(await reg.drainRequested('n'), false)
    await reg.setDrain('n', true)
    assert.equal(await reg.drainRequested('n'), true)
    await reg.setDrain('n', false)
    assert.equal(await reg.drainRequested('n'), false)
    await reg.setDrain('n', true)
    await reg.forget('n')
    assert.equal(await reg.drainRequested('n'), false)
  })
}
