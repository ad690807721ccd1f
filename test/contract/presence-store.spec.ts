import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { PresenceStore } from '../../src/stores/presence-store.ts'

export function presenceStoreSpec (name: string, build: (t: TestContext) => Promise<PresenceStore>): void {
  const dev = (): string => `d-${randomUUID().slice(0, 8)}`

  test(`${name}: a connect is counted, names its node, and its disconnect removes it and records last seen`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = dev()
    const { entry, replaced } = await store.connect(d, 'n1', 1000)
    assert.equal(replaced, undefined)
    assert.deepEqual(await store.get(d), entry)
    assert.deepEqual(await store.getMany([dev(), d]), [undefined, entry])
    assert.equal(entry.nodeId, 'n1')
    assert.equal(await store.count(), 1)
    assert.equal(await store.countNode('n1'), 1)
    assert.equal(await store.disconnect(d, 'n1', entry.epoch, 2000), true)
    assert.equal(await store.get(d), undefined)
    assert.equal(await store.count(), 0)
    assert.equal(await store.countNode('n1'), 0)
    assert.equal(await store.lastSeen(d), 2000)
  })

  test(`${name}: epochs increase with every connection`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const a = await store.connect(dev(), 'n1', 1)
    const b = await store.connect(dev(), 'n2', 2)
    assert.ok(b.entry.epoch > a.entry.epoch)
  })

  test(`${name}: a takeover moves the device to the new node and a late disconnect from the old connection changes nothing`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = dev()
    const first = await store.connect(d, 'n1', 1)
    const second = await store.connect(d, 'n2', 2)
    assert.equal(second.result, 'connected')
    assert.deepEqual(second.replaced, first.entry)
    assert.equal(await store.disconnect(d, 'n1', first.entry.epoch, 3), false)
    assert.deepEqual(await store.get(d), second.entry)
    assert.equal(await store.count(), 1)
    assert.equal(await store.countNode('n1'), 0)
    assert.equal(await store.countNode('n2'), 1)
  })

  test(`${name}: a reconnect on the same node with a stale epoch is not removed by the old disconnect`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = dev()
    const first = await store.connect(d, 'n1', 1)
    const second = await store.connect(d, 'n1', 2)
    assert.equal(await store.disconnect(d, 'n1', first.entry.epoch, 3), false)
    assert.equal((await store.get(d))?.epoch, second.entry.epoch)
  })

  test(`${name}: a connect repeated after a lost reply adopts its own entry, or writes it if the first attempt never ran`, { timeout: 30_000 }, async (t) => {
    const store = await build(t)
    const [d, e] = [dev(), dev()]
    const older = await store.connect(d, 'n0', 5)
    // The first attempt ran (its reply was lost): the repeat finds this connection's entry and keeps it as it is.
    const first = await store.connect(d, 'n1', 10, undefined, 'n1.p1.1')
    assert.equal(first.result, 'connected')
    assert.deepEqual(first.replaced, older.entry)
    assert.deepEqual(first.entry, { deviceId: d, nodeId: 'n1', epoch: first.entry.epoch, connectedAt: 10, connection: 'n1.p1.1' })
    assert.deepEqual(await store.get(d), first.entry)
    const again = await store.connect(d, 'n1', 10, undefined, 'n1.p1.1')
    assert.deepEqual(again, { result: 'adopted', entry: first.entry, replaced: undefined }, 'the same epoch, no takeover')
    assert.equal(await store.countNode('n1'), 1)
    assert.equal(await store.count(), 1)
    // With an origin too.
    const withOrigin = await store.connect(e, 'n1', 10, { transport: 'tls', address: '127.0.0.1:9' }, 'n1.p1.2')
    assert.deepEqual(await store.connect(e, 'n1', 10, { transport: 'tls', address: '127.0.0.1:9' }, 'n1.p1.2'), { result: 'adopted', entry: withOrigin.entry, replaced: undefined })
    assert.deepEqual(await store.listNode('n1').then((l) => l.find((x) => x.deviceId === e)), withOrigin.entry)
    // The first attempt never ran: nothing there (or an older connection's entry), so the repeat writes it.
    await store.disconnect(d, 'n1', first.entry.epoch, 11)
    const written = await store.connect(d, 'n1', 12, undefined, 'n1.p1.3')
    assert.equal(written.result, 'connected')
    assert.ok(written.entry.epoch > first.entry.epoch)
    assert.deepEqual(await store.get(d), written.entry)
    assert.equal(await store.lastSeen(d), undefined)
  })

  test(`${name}: a connect never replaces the entry of a connection made after it (a write that ran late, or its repeat)`, { timeout: 30_000 }, async (t) => {
    const store = await build(t)
    const d = dev()
    const newer = await store.connect(d, 'n2', 20, { transport: 'tcp', address: '127.0.0.1:2' }, 'n2.p1.1')
    for (const connection of ['n1.p1.1', undefined]) {
      const late = await store.connect(d, 'n1', 10, { transport: 'tcp', address: '127.0.0.1:1' }, connection)
      assert.deepEqual(late, { result: 'superseded', entry: newer.entry, replaced: undefined })
    }
    assert.deepEqual(await store.get(d), newer.entry)
    assert.equal(await store.countNode('n1'), 0)
    assert.equal(await store.countNode('n2'), 1)
    // The late connection's own write ran first and the newer one took over: its repeat is superseded, not adopted.
    const e = dev()
    await store.connect(e, 'n1', 10, undefined, 'n1.p1.2')
    const taker = await store.connect(e, 'n2', 20, undefined, 'n2.p1.2')
    assert.equal(taker.result, 'connected')
    assert.deepEqual(await store.connect(e, 'n1', 10, undefined, 'n1.p1.2'), { result: 'superseded', entry: taker.entry, replaced: undefined })
    assert.deepEqual(await store.get(e), taker.entry)
    // One node's writes arrive in the order of its connections (and its clock may step back): the later write wins.
    const f = dev()
    await store.connect(f, 'n1', 20, undefined, 'n1.p1.3')
    const sameNode = await store.connect(f, 'n1', 10, undefined, 'n1.p1.4')
    assert.equal(sameNode.result, 'connected')
    assert.deepEqual(await store.get(f), sameNode.entry)
  })

  test(`${name}: listNode returns the node's entries only`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const [a, b, c] = [dev(), dev(), dev()]
    await store.connect(a, 'n1', 1)
    await store.connect(b, 'n1', 1)
    await store.connect(c, 'n2', 1)
    assert.deepEqual((await store.listNode('n1')).map((e) => e.deviceId).sort(), [a, b].sort())
    assert.deepEqual((await store.listNode('n3')), [])
  })

  test(`${name}: listNode and list return a node's entries however many it holds (a node of a large fleet)`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    // More than a Lua call can take as arguments at once (LUAI_MAXCSTACK, 8,000 in Redis).
    const n = 12_000
    const ids = Array.from({ length: n }, (_, i) => `big-${String(i).padStart(5, '0')}`)
    for (let i = 0; i < n; i += 1000) await Promise.all(ids.slice(i, i + 1000).map((id) => store.connect(id, 'big', i)))
    const listed = await store.listNode('big')
    assert.equal(listed.length, n)
    assert.deepEqual(listed.map((e) => e.deviceId).sort(), ids)
    assert.ok(listed.every((e) => e.nodeId === 'big'))
    const page = await store.list({ nodeId: 'big', after: ids[9_000], limit: 1000 })
    assert.deepEqual(page.entries.map((e) => e.deviceId), ids.slice(9_001, 10_001))
  })

  test(`${name}: removing a dead node removes its entries and no other node's`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const [a, b, c] = [dev(), dev(), dev()]
    const { entry: aEntry } = await store.connect(a, 'dead', 1)
    await store.connect(b, 'dead', 1)
    await store.connect(c, 'alive', 1)
    // b moved to the live node before the cleanup ran.
    await store.connect(b, 'alive', 2)
    assert.deepEqual(await store.removeNode('dead', 5), [aEntry], 'the removed entries, epochs included (the node-dead events carry them)')
    assert.equal(await store.get(a), undefined)
    assert.equal((await store.get(b))?.nodeId, 'alive')
    assert.equal(await store.count(), 2)
    assert.equal(await store.lastSeen(a), 5)
  })

  test(`${name}: restore re-adds a lost entry under a fresh epoch but never overwrites a newer connection`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const d = dev()
    const { entry } = await store.connect(d, 'n1', 1)
    await store.disconnect(d, 'n1', entry.epoch, 2)
    const restored = await store.restore(entry)
    assert.equal(restored.result, 'restored')
    assert.ok(restored.entry.epoch > entry.epoch, 'a fresh epoch: its connected event orders after the removal\'s disconnected event')
    assert.deepEqual(restored.entry, { ...entry, epoch: restored.entry.epoch })
    assert.deepEqual(await store.get(d), restored.entry)
    assert.equal(await store.lastSeen(d), undefined, 'online again')
    assert.deepEqual(await store.restore(restored.entry), { result: 'present', entry: restored.entry }, 'the entry is there: nothing to do, and not superseded')
    const newer = await store.connect(d, 'n2', 3)
    assert.deepEqual(await store.restore(restored.entry), { result: 'superseded', entry: newer.entry })
    assert.deepEqual(await store.get(d), newer.entry)
    assert.equal(await store.countNode('n1'), 0)
  })

  test(`${name}: concurrent connects and disconnects of many devices leave an exact count`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const ids = Array.from({ length: 200 }, dev)
    const entries = await Promise.all(ids.map((id, i) => store.connect(id, `n${i % 3}`, i)))
    await Promise.all(entries.filter((_, i) => i % 2 === 0).map(({ entry }) => store.disconnect(entry.deviceId, entry.nodeId, entry.epoch, 9)))
    assert.equal(await store.count(), 100)
    const perNode = await Promise.all(['n0', 'n1', 'n2'].map((n) => store.countNode(n)))
    assert.equal(perNode.reduce((a, b) => a + b, 0), 100)
  })

  test(`${name}: devices offline since before a time are listed oldest first, and a reconnect or forgetSeen takes them off`, { timeout: 120_000 }, async (t) => {
    const store = await build(t)
    const [a, b, c] = [dev(), dev(), dev()]
    for (const [id, off] of [[a, 300], [b, 100], [c, 900]] as const) {
      const { entry } = await store.connect(id, 'n1', 1)
      await store.disconnect(id, 'n1', entry.epoch, off)
    }
    assert.deepEqual(await store.staleSince(500, 10), [b, a])
    assert.deepEqual(await store.staleSince(500, 1), [b])
    await store.connect(b, 'n1', 1000)
    assert.deepEqual(await store.staleSince(500, 10), [a])
    await store.forgetSeen(a)
    assert.deepEqual(await store.staleSince(500, 10), [])
  })

  test(`${name}: an entry keeps the transport and address it connected with, through a takeover and a restore`, { timeout: 30_000 }, async (t) => {
    const store = await build(t)
    const d = dev()
    const { entry } = await store.connect(d, 'n1', 10, { transport: 'wss', address: '[::1]:50123' })
    assert.deepEqual(entry, { deviceId: d, nodeId: 'n1', epoch: entry.epoch, connectedAt: 10, transport: 'wss', address: '[::1]:50123' })
    assert.deepEqual(await store.get(d), entry)
    const second = await store.connect(d, 'n2', 20, { transport: 'tcp', address: '10.0.0.7:1884' })
    assert.deepEqual(second.replaced, entry)
    assert.deepEqual((await store.list({ limit: 10 })).entries, [second.entry])
    await store.disconnect(d, 'n2', second.entry.epoch, 30)
    const restored = await store.restore(second.entry)
    assert.deepEqual(restored.entry, { ...second.entry, epoch: restored.entry.epoch })
    assert.deepEqual(await store.get(d), restored.entry)
    assert.deepEqual(await store.listNode('n2'), [restored.entry])
  })

  test(`${name}: list pages through every online device by id, and its pages add up to count()`, { timeout: 30_000 }, async (t) => {
    const store = await build(t)
    const ids = Array.from({ length: 25 }, (_, i) => `p-${String(i).padStart(2, '0')}-${randomUUID().slice(0, 4)}`)
    await Promise.all(ids.map((id, i) => store.connect(id, i % 2 === 0 ? 'even' : 'odd', i, { transport: i % 3 === 0 ? 'tls' : 'tcp', address: `127.0.0.1:${1000 + i}` })))
    // One goes offline, one moves to another node: neither may show twice or stay listed where it was.
    const gone = await store.get(ids[3] as string)
    await store.disconnect(ids[3] as string, 'odd', gone?.epoch ?? 0, 99)
    await store.connect(ids[4] as string, 'odd', 100, { transport: 'ws', address: '127.0.0.1:2000' })

    const pages: string[][] = []
    let after: string | undefined
    do {
      const page = await store.list({ after, limit: 7 })
      assert.ok(page.entries.length <= 7)
      pages.push(page.entries.map((e) => e.deviceId))
      after = page.next
    } while (after !== undefined)
    const listed = pages.flat()
    const expected = ids.filter((_, i) => i !== 3)
    assert.deepEqual(listed, expected, 'every online device once, in id order')
    assert.deepEqual(pages.map((p) => p.length), [7, 7, 7, 3])
    assert.equal(listed.length, await store.count())

    const odd = await store.list({ nodeId: 'odd', limit: 100 })
    assert.deepEqual(odd.entries.map((e) => e.deviceId), expected.filter((id) => id === ids[4] || ids.indexOf(id) % 2 === 1))
    assert.ok(odd.entries.every((e) => e.nodeId === 'odd'))
    assert.equal(odd.next, undefined)
    assert.equal(odd.entries.length, await store.countNode('odd'))
    const moved = odd.entries.find((e) => e.deviceId === ids[4])
    assert.deepEqual([moved?.transport, moved?.address], ['ws', '127.0.0.1:2000'])

    const exact = await store.list({ limit: 24 })
    assert.equal(exact.entries.length, 24)
    assert.equal(exact.next, undefined, 'a page that ends with the last device has no next')
    assert.deepEqual(await store.list({ after: listed.at(-1), limit: 5 }), { entries: [], next: undefined })
    assert.deepEqual(await store.list({ nodeId: 'nobody', limit: 5 }), { entries: [], next: undefined })
  })

  test(`${name}: a dead node's devices leave the listing with it`, { timeout: 30_000 }, async (t) => {
    const store = await build(t)
    const [a, b] = [dev(), dev()]
    await store.connect(a, 'dead', 1, { transport: 'tcp', address: '127.0.0.1:1' })
    await store.connect(b, 'alive', 1, { transport: 'tcp', address: '127.0.0.1:2' })
    await store.removeNode('dead', 5)
    assert.deepEqual((await store.list({ limit: 10 })).entries.map((e) => e.deviceId), [b])
    assert.deepEqual((await store.list({ nodeId: 'dead', limit: 10 })).entries, [])
    assert.equal(await store.count(), 1)
  })
}
