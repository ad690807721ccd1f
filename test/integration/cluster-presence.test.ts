import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import mqtt, { type MqttClient } from 'mqtt'
import { bounded, eventually, waitUntil } from '../helpers/eventually.ts'
import { provisionMany, startTestCluster, type TestCluster } from '../helpers/cluster.ts'
import { consumeUntil, uniqueTopic, type TelemetryRecord } from '../helpers/kafka.ts'
import { connectRedis, kafkaBrokers } from '../helpers/services.ts'
import { createRedisPresenceStore } from '../../src/stores/redis-presence-store.ts'

// Presence and online counts across three broker processes (docs/cluster.md, Presence).

const HB = 500

interface Sim {
  readonly id: string
  client: MqttClient | undefined
  nodeId: string | undefined
}

/** Resolves with the connected client, or undefined when it was refused, closed or timed out first. */
function connect (url: string, id: string, token: string): Promise<MqttClient | undefined> {
  // connectAsync can stay pending when a takeover closes the socket before CONNACK, so settle on every outcome.
  const c = mqtt.connect(url, { clientId: id, username: id, password: token, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 })
  return new Promise((resolve) => {
    const fail = (): void => { c.end(true); resolve(undefined) }
    c.once('connect', () => resolve(c))
    c.once('error', fail)
    c.once('close', fail)
  })
}

/** Presence is exact: the Redis total equals the live sessions, and every connected device is recorded on its node. */
async function presenceMatches (cluster: TestCluster, sims: Sim[]): Promise<boolean> {
  const live = sims.filter((s) => s.client?.connected === true)
  const stats = await cluster.stats()
  if (stats.online !== live.length) return false
  if (stats.nodes.reduce((sum, n) => sum + n.sessions, 0) !== live.length) return false
  if (stats.nodes.some((n) => n.drift !== 0)) return false
  for (const s of live) {
    const p = (await cluster.api.api('GET', `/v1/admin/devices/${s.id}/presence`)).body
    if (p.online !== true || p.nodeId !== s.nodeId) return false
  }
  return true
}

test('1,000 devices connecting, disconnecting and reconnecting at random across 3 nodes, with same-id races: the total equals the live sessions and presence names each device\'s node', { timeout: 180_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: HB })
  const tokens = await provisionMany(cluster, 1000, 'churn')
  const sims: Sim[] = [...tokens.keys()].map((id) => ({ id, client: undefined, nodeId: undefined }))
  t.after(async () => { await Promise.all(sims.map((s) => s.client?.endAsync(true))) })
  let seed = 42
  const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const pickNode = (): TestCluster['nodes'][number] => cluster.nodes[Math.floor(rand() * cluster.nodes.length)] as TestCluster['nodes'][number]

  async function step (s: Sim): Promise<void> {
    const action = rand()
    if (s.client?.connected === true && action < 0.4) {
      await s.client.endAsync()
      return
    }
    const node = pickNode()
    if (action > 0.9) {
      // Same-id race: two connections for one device on two nodes at once; whichever stays connected is the truth.
      const other = pickNode()
      const [a, b] = await Promise.all([connect(node.mqttUrl, s.id, tokens.get(s.id) as string), connect(other.mqttUrl, s.id, tokens.get(s.id) as string)])
      track(s, a, node.nodeId)
      track(s, b, other.nodeId)
      return
    }
    track(s, await connect(node.mqttUrl, s.id, tokens.get(s.id) as string), node.nodeId)
  }
  // Every connection a device has open; after a takeover settles exactly one remains.
  const open = new Map<string, Map<MqttClient, string>>()
  function track (s: Sim, c: MqttClient | undefined, nodeId: string): void {
    if (c === undefined) return
    let mine = open.get(s.id)
    if (mine === undefined) open.set(s.id, mine = new Map())
    mine.set(c, nodeId)
    const sync = (): void => {
      const [first] = [...(mine as Map<MqttClient, string>).entries()].filter(([x]) => x.connected)
      s.client = first?.[0]
      s.nodeId = first?.[1]
    }
    c.on('close', () => { mine.delete(c); sync() })
    sync()
  }
  t.after(async () => { for (const m of open.values()) for (const c of m.keys()) c.end(true) })

  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < sims.length; i += 100) await Promise.all(sims.slice(i, i + 100).map(step))
  }
  // Takeovers close the losers asynchronously (across nodes: after the winner's presence write, a kick via Redis).
  const doubled = (): string[] => [...open].filter(([, m]) => [...m.keys()].filter((c) => c.connected).length > 1).map(([id]) => id)
  assert.equal(await eventually(async () => doubled().length === 0), true, `devices with more than one connection: ${doubled().join(', ')}`)
  const live = sims.filter((s) => s.client?.connected === true).length
  assert.ok(live > 200 && live < 1000, `a real mix of online and offline devices: ${live}`)
  assert.equal(await eventually(() => presenceMatches(cluster, sims)), true, JSON.stringify(await cluster.stats()))
})

test('a node killed with SIGKILL: its devices are gone from presence and the total equals the live sessions', { timeout: 60_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: HB })
  const tokens = await provisionMany(cluster, 150, 'kill')
  const sims: Sim[] = []
  t.after(async () => { await Promise.all(sims.map((s) => s.client?.endAsync(true))) })
  let i = 0
  for (const [id, token] of tokens) {
    const node = cluster.nodes[i++ % 3] as TestCluster['nodes'][number]
    const c = await connect(node.mqttUrl, id, token)
    assert.ok(c !== undefined)
    const s: Sim = { id, client: c, nodeId: node.nodeId }
    c.on('close', () => { s.client = undefined; s.nodeId = undefined })
    sims.push(s)
  }
  assert.equal(await eventually(() => presenceMatches(cluster, sims)), true)

  const victim = cluster.nodes[1] as TestCluster['nodes'][number]
  victim.child.kill('SIGKILL')
  await bounded('the killed node to exit', victim.exited)
  const killedAt = Date.now()
  // The kill closes the victim's sockets: its devices are offline now; presence must follow (in about two
  // heartbeat periods, reported in the message; the bound only stops a test that would never pass).
  assert.equal(await eventually(async () => {
    const stats = await cluster.stats()
    return stats.online === 100 && !stats.nodes.some((n) => n.nodeId === victim.nodeId)
  }, 30_000, 25), true, `after ${Date.now() - killedAt} ms: ${JSON.stringify(await cluster.stats())}`)
  assert.equal(await presenceMatches(cluster, sims), true)
})

test('100 rapid same-id connections alternating between two nodes: exactly one stays online and presence names its node', { timeout: 60_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: HB })
  const { token } = await cluster.api.provision('flapper')
  const clients: Array<{ c: MqttClient, nodeId: string }> = []
  t.after(async () => { await Promise.all(clients.map(({ c }) => c.endAsync(true))) })
  await Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const node = cluster.nodes[i % 2] as TestCluster['nodes'][number]
    await new Promise((resolve) => setTimeout(resolve, i * 3))
    const c = await connect(node.mqttUrl, 'flapper', token)
    if (c !== undefined) clients.push({ c, nodeId: node.nodeId })
  }))
  let survivors: typeof clients = []
  assert.equal(await eventually(async () => {
    survivors = clients.filter(({ c }) => c.connected)
    return survivors.length === 1
  }), true, `connected: ${clients.filter(({ c }) => c.connected).length}`)
  const only = survivors[0] as { c: MqttClient, nodeId: string }
  assert.equal(await eventually(async () => {
    const p = (await cluster.api.api('GET', '/v1/admin/devices/flapper/presence')).body
    const stats = await cluster.stats()
    return p.online === true && p.nodeId === only.nodeId && stats.online === 1 && stats.nodes.every((n) => n.drift === 0)
  }), true, JSON.stringify(await cluster.stats()))
})

test('draining a node with 500 devices moves every one of them to the other nodes', { timeout: 240_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 3, heartbeatMs: HB, env: { PUSHLINE_DRAIN_RATE: '1000' } })
  const secrets = new Map<string, string>()
  for (let i = 0; i < 500; i += 50) {
    await Promise.all(Array.from({ length: 50 }, async (_, j) => {
      const id = `drain-${i + j}`
      secrets.set(id, await cluster.api.createDevice(id))
    }))
  }
  const victim = cluster.nodes[0] as TestCluster['nodes'][number]
  const sims: Sim[] = []
  let stopped = false
  t.after(async () => { stopped = true; await Promise.all(sims.map((s) => s.client?.endAsync(true))) })

  // A device as a real one behaves: when its connection drops it asks the registry for a token and a node.
  async function live (s: Sim, firstUrl?: string): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      if (stopped) return
      const issued = (await cluster.api.api('POST', `/v1/devices/${s.id}/token`, { secret: secrets.get(s.id) }, {})).body
      const url = firstUrl ?? issued.broker.mqtt
      firstUrl = undefined
      const c = await connect(url, s.id, issued.token)
      if (c === undefined) { await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100)); continue }
      s.client = c
      s.nodeId = cluster.nodes.find((n) => url === n.mqttUrl)?.nodeId
      c.once('close', () => { s.client = undefined; s.nodeId = undefined; if (!stopped) live(s).catch(() => {}) })
      return
    }
  }
  await Promise.all([...secrets.keys()].map(async (id) => {
    const s: Sim = { id, client: undefined, nodeId: undefined }
    sims.push(s)
    await live(s, victim.mqttUrl)
  }))
  assert.equal(sims.filter((s) => s.nodeId === victim.nodeId).length, 500)

  const drain = await cluster.api.api('POST', `/v1/admin/nodes/${victim.nodeId}/drain`)
  assert.equal(drain.status, 202)
  assert.equal(await eventually(async () => sims.every((s) => s.client?.connected === true && s.nodeId !== undefined && s.nodeId !== victim.nodeId), 180_000, 200), true,
    `still on the drained node or offline: ${sims.filter((s) => s.client?.connected !== true || s.nodeId === victim.nodeId).length}`)
  const nodes = (await cluster.api.api('GET', '/v1/admin/nodes')).body.nodes as Array<{ nodeId: string, draining: boolean, connections: number }>
  assert.equal(nodes.find((n) => n.nodeId === victim.nodeId)?.draining, true)
  assert.equal(await eventually(() => presenceMatches(cluster, sims)), true)
  assert.equal((await fetch(`http://127.0.0.1:${victim.httpPort}/readyz`)).status, 503, 'a draining node is not ready')
})

/** A one-node cluster and a device connected to it; closed() tells whether its connection has closed since. */
async function oneConnectedDevice (t: TestContext, tag: string): Promise<{ cluster: TestCluster, a: { mqttUrl: string, nodeId: string }, id: string, device: MqttClient, closed: () => boolean }> {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: HB })
  const a = cluster.nodes[0] as { mqttUrl: string, nodeId: string }
  const id = `${tag}-${Date.now().toString(36)}`
  const { token } = await cluster.api.provision(id)
  const device = await connect(a.mqttUrl, id, token)
  assert.ok(device !== undefined, 'connected to node A')
  t.after(() => device.end(true))
  let closed = false
  device.on('close', () => { closed = true })
  return { cluster, a, id, device, closed: () => closed }
}

test('a connection whose takeover close never arrived is closed by its node once presence names a newer connection elsewhere', { timeout: 120_000 }, async (t) => {
  const { cluster, a, id, closed } = await oneConnectedDevice(t, 'zombie')
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body.nodeId === a.nodeId))

  // A newer connection on another node whose takeover messages to A were lost, written straight into presence:
  // neither the kick nor aedes's announcement is ever sent. (That node is not a member, so no reconciliation of
  // its own removes the entry.)
  const elsewhere = `elsewhere-${id}`
  const presence = createRedisPresenceStore({ redis: connectRedis(t), prefix: cluster.prefix })
  await presence.connect(id, elsewhere, Date.now())
  assert.ok(await eventually(closed), 'node A closed the superseded connection')
  // Marker: another device connects to node A after that close and leaves again. Node A's presence writes go out
  // in order on its Redis connection, so once the marker's entry is gone, the closed connection's removal (which
  // must find the newer entry and leave it) has run too.
  const markerId = `marker-${id}`
  const { token: markerToken } = await cluster.api.provision(markerId)
  const marker = await connect(a.mqttUrl, markerId, markerToken)
  assert.ok(marker !== undefined, 'the marker device connected to node A')
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${markerId}/presence`)).body.online === true), 'the marker device is online')
  await marker.endAsync()
  assert.ok(await eventually(async () => (await cluster.api.api('GET', `/v1/admin/devices/${markerId}/presence`)).body.online === false), 'the marker device is offline again')
  const p = (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body
  assert.equal(p.nodeId, elsewhere, 'presence still names the newer connection')
})

test('a newer presence entry on the connection\'s own node (its restore ran in Redis but the reply timed out) is adopted, not taken for a takeover: the device stays connected', { timeout: 120_000 }, async (t) => {
  const { cluster, a, id, device, closed } = await oneConnectedDevice(t, 'own-restore')
  const presence = createRedisPresenceStore({ redis: connectRedis(t), prefix: cluster.prefix })
  assert.ok(await eventually(async () => (await presence.get(id))?.nodeId === a.nodeId))

  // What a restore that timed out on node A but ran in Redis leaves: an entry naming node A under a fresh epoch
  // the node never learned. A ghost entry in node A's index with no connection makes the counts differ, so
  // reconciliation runs at once, and its removal (after every live connection was checked) marks the pass done.
  const { entry: injected } = await presence.connect(id, a.nodeId, Date.now())
  const ghost = `ghost-${id}`
  await presence.connect(ghost, a.nodeId, Date.now())
  assert.ok(await eventually(async () => (await presence.get(ghost)) === undefined), 'reconciliation ran and removed the ghost')
  // Marker on the device's own connection: had that pass closed it, the close went out before this SUBACK could.
  await bounded('subscribe after the reconciliation', device.subscribeAsync(`devices/${id}/down`, { qos: 1 }))
  assert.equal(closed(), false, 'the connection was not closed')
  assert.deepEqual(await presence.get(id), injected, 'presence keeps the adopted entry')
  // Adopted: the connection's disconnect now removes that entry (it names its epoch).
  await device.endAsync()
  assert.ok(await eventually(async () => (await presence.get(id)) === undefined), 'the device is offline after its disconnect')
})

test('a connection whose presence write failed without running is written when Redis answers again: the device stays connected and presence is exact', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: HB })
  const node = cluster.nodes[0] as TestCluster['nodes'][number]
  const id = `unrecorded-${Date.now().toString(36)}`
  const { token } = await cluster.api.provision(id)
  const redis = connectRedis(t)
  // The connect script clears the device's last-seen mark and then takes an epoch. With the epoch counter not a
  // number it fails there, as a write can under load, and the cleared mark shows that it ran that far.
  await redis.zadd(`${cluster.prefix}last-seen`, 1, id)
  await redis.set(`${cluster.prefix}epoch`, 'not-a-number')
  const device = mqtt.connect(node.mqttUrl, { clientId: id, username: id, password: token, reconnectPeriod: 200, protocolVersion: 4 })
  t.after(() => device.end(true))
  let connects = 0
  let closes = 0
  device.on('connect', () => { connects++ })
  device.on('close', () => { closes++ })
  assert.ok(await eventually(async () => connects >= 1 && await redis.zscore(`${cluster.prefix}last-seen`, id) === null), 'connected, and its presence write failed')
  await redis.set(`${cluster.prefix}epoch`, '1000000000')

  const exact = async (): Promise<boolean> => {
    const stats = await cluster.stats()
    const p = (await cluster.api.api('GET', `/v1/admin/devices/${id}/presence`)).body
    return device.connected && stats.online === 1 && stats.nodes.every((n) => n.sessions === 1 && n.drift === 0) && p.online === true && p.nodeId === node.nodeId
  }
  assert.ok(await eventually(exact), `presence never matched the live connection: ${JSON.stringify(await cluster.stats())}`)
  // A full reconciliation pass after that: a ghost entry in the node's index makes the counts differ, and the pass
  // that removes it has checked the device's connection.
  const presence = createRedisPresenceStore({ redis, prefix: cluster.prefix })
  const ghost = `ghost-${id}`
  await presence.connect(ghost, node.nodeId, Date.now())
  assert.ok(await eventually(async () => (await presence.get(ghost)) === undefined), 'reconciliation ran and removed the ghost')
  // Marker on the device's own connection: had that pass closed it, the close went out before this SUBACK could.
  await bounded('subscribe after the reconciliation', device.subscribeAsync(`devices/${id}/down`, { qos: 1 }))
  assert.equal(closes, 0, 'the connection was never closed')
  assert.equal(connects, 1, 'the first connection is the recorded one')
  assert.ok(await exact())
  assert.ok(((await presence.get(id))?.epoch ?? 0) > 1000000000, 'written after Redis answered again')
})

interface PresenceRecord { event: 'connected' | 'disconnected', nodeId: string, epoch: number, reason?: string }

/**
 * Each device's state by the stream's ordering rule (docs/cluster.md, Late nodes): the event with the highest
 * epoch, and at equal epochs the disconnect (it ends that connection). Several nodes produce, so Kafka's arrival
 * order across them is not the order of the changes.
 */
function streamState (records: readonly TelemetryRecord[]): Map<string, PresenceRecord> {
  const last = new Map<string, PresenceRecord>()
  for (const r of records) {
    const e = JSON.parse(r.value.toString()) as PresenceRecord
    const cur = last.get(r.key)
    if (cur === undefined || e.epoch > cur.epoch || (e.epoch === cur.epoch && e.event === 'disconnected')) last.set(r.key, e)
  }
  return last
}

/** Every device's last event says what presence says: connected on its node, or disconnected. */
function streamMatches (records: readonly TelemetryRecord[], sims: readonly Sim[]): boolean {
  const state = streamState(records)
  return sims.every((s) => {
    const e = state.get(s.id)
    return s.client?.connected === true ? e?.event === 'connected' && e.nodeId === s.nodeId : e?.event === 'disconnected'
  })
}

test('a node paused past its record\'s TTL and declared dead: it re-asserts its devices, the presence stream ends consistent, and a drain order given before the pause is honoured', { timeout: 180_000 }, async (t) => {
  const topic = uniqueTopic('late-presence')
  const cluster = await startTestCluster(t, {
    nodes: 3,
    heartbeatMs: HB,
    env: { PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(','), PUSHLINE_KAFKA_PRESENCE_TOPIC: topic, PUSHLINE_KAFKA_TELEMETRY_TOPIC: uniqueTopic('late-telemetry'), PUSHLINE_DRAIN_RATE: '10' }
  })
  const victim = cluster.nodes[1] as TestCluster['nodes'][number]
  const survivors = cluster.nodes.filter((n) => n !== victim)
  const tokens = await provisionMany(cluster, 61, 'late')
  const spare = 'late-60'
  const sims: Sim[] = []
  t.after(async () => { await Promise.all(sims.map((s) => s.client?.endAsync(true))) })
  let i = 0
  for (const [id, token] of tokens) {
    if (id === spare) continue
    const node = cluster.nodes[i++ % 3] as TestCluster['nodes'][number]
    // A keepalive far beyond the pause: the devices keep their connections through it, as through a long GC.
    const c = mqtt.connect(node.mqttUrl, { clientId: id, username: id, password: token, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, keepalive: 600 })
    await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject) })
    const s: Sim = { id, client: c, nodeId: node.nodeId }
    c.on('close', () => { s.client = undefined; s.nodeId = undefined })
    sims.push(s)
  }
  const onVictim = sims.filter((s) => s.nodeId === victim.nodeId)
  assert.equal(await eventually(() => presenceMatches(cluster, sims)), true)

  /** Waits for a survivor to log that it removed the victim's presence for the `nth` time (no sleep: the event). */
  const declaredDead = async (nth: number): Promise<void> => {
    const mark = `"deadNode":"${victim.nodeId}"`
    await waitUntil(`a survivor to declare ${victim.nodeId} dead (${nth})`, () => survivors.reduce((sum, n) => sum + n.stdout().split(mark).length - 1, 0) >= nth, 60_000, 25)
  }

  // 1. Paused (SIGSTOP) past its record's TTL: a survivor declares it dead and removes its devices' presence.
  victim.child.kill('SIGSTOP')
  await declaredDead(1)
  const swept = await cluster.stats()
  assert.equal(swept.online, sims.length - onVictim.length, 'the survivor removed the paused node\'s presence')
  victim.child.kill('SIGCONT')
  // Its devices never left it: presence must name them on it again, and the stream must end with them connected.
  assert.ok(onVictim.every((s) => s.client?.connected === true && s.nodeId === victim.nodeId))
  assert.equal(await eventually(() => presenceMatches(cluster, sims), 60_000), true, JSON.stringify(await cluster.stats()))
  // Until every paused device's removal and re-add are in (several nodes produce: the stream can match earlier).
  const reasons = (rs: readonly TelemetryRecord[], reason: string): Set<string> =>
    new Set(rs.filter((r) => (JSON.parse(r.value.toString()) as PresenceRecord).reason === reason).map((r) => r.key))
  const afterPause = await consumeUntil(t, topic, (rs) => onVictim.every((s) => reasons(rs, 'node-dead').has(s.id) && reasons(rs, 'restored').has(s.id)), 60_000)
  assert.equal(streamMatches(afterPause, sims), true, 'every device\'s last event in the stream matches presence')
  const victimEvents = afterPause.filter((r) => onVictim.some((s) => s.id === r.key)).map((r) => JSON.parse(r.value.toString()) as PresenceRecord)
  assert.equal(victimEvents.filter((e) => e.reason === 'node-dead').length, onVictim.length, 'the survivor announced each of them as disconnected, once')
  assert.equal(victimEvents.filter((e) => e.reason === 'restored').length, onVictim.length, 'and the paused node announced each again, once')
  assert.ok(victimEvents.every((e) => e.nodeId === victim.nodeId))

  // 2. A drain order, then a pause past the TTL before or while the node carries it out: after the pause it drains.
  assert.equal((await cluster.api.api('POST', `/v1/admin/nodes/${victim.nodeId}/drain`)).status, 202)
  victim.child.kill('SIGSTOP')
  await declaredDead(2)
  victim.child.kill('SIGCONT')
  assert.equal(await eventually(() => onVictim.every((s) => s.client === undefined), 60_000), true, `still connected to the drained node: ${onVictim.filter((s) => s.client !== undefined).length}`)
  await cluster.waitForNodes([victim.nodeId])
  const nodes = (await cluster.api.api('GET', '/v1/admin/nodes')).body.nodes as Array<{ nodeId: string, draining: boolean, drainRequested: boolean }>
  assert.deepEqual(nodes.filter((n) => n.nodeId === victim.nodeId).map((n) => [n.draining, n.drainRequested]), [[true, true]], 'still draining after the pause')
  assert.equal(await connect(victim.mqttUrl, spare, tokens.get(spare) as string), undefined, 'the drained node refuses new devices')
  assert.equal(await eventually(() => presenceMatches(cluster, sims), 60_000), true, JSON.stringify(await cluster.stats()))
  await consumeUntil(t, topic, (rs) => streamMatches(rs, sims), 60_000)
})
