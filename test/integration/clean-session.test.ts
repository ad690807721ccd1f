import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { eventually } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'

// [MQTT-3.1.2-6] through real MQTT connections, against both session stores: the in-memory one (embedded mode)
// and Redis. Anonymous clients, as a conformance suite uses them, because their messages are routed through the
// broker's session store (pushes to devices are written directly and kept in the push history instead).

async function anonymous (t: TestContext, p: TestPlatform, clientId: string, clean: boolean): Promise<{ client: MqttClient, sessionPresent: boolean, received: string[] }> {
  const received: string[] = []
  const client = await connectDevice(t, p.mqttUrl, clientId, '', { username: undefined, password: undefined, clean })
  client.on('message', (_topic, payload) => { received.push(payload.toString()) })
  // connectAsync resolves after the CONNACK, which MQTT.js keeps in a private field.
  const sessionPresent = (client as unknown as { connackPacket?: { sessionPresent?: boolean } }).connackPacket?.sessionPresent === true
  return { client, sessionPresent, received }
}

async function waitFor (received: string[], payload: string): Promise<void> {
  assert.ok(await eventually(async () => received.includes(payload), 15_000, 20), `"${payload}" did not arrive; got ${JSON.stringify(received)}`)
}

const stores: Array<{ name: string, clusterPrefix?: () => string, env: Record<string, string> }> = [
  { name: 'embedded (in-memory sessions)', env: { PUSHLINE_ALLOW_ANONYMOUS: 'true' } },
  { name: 'Redis sessions', clusterPrefix: uniquePrefix, env: { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true' } }
]

for (const store of stores) {
  test(`${store.name}: a CleanSession=1 connect discards the previous session and the QoS 1 messages queued for it`, { timeout: 60_000 }, async (t) => {
    const p = await startTestPlatform(t, { env: store.env, ...(store.clusterPrefix !== undefined && { clusterPrefix: store.clusterPrefix() }) })
    const topic = 'conformance/clean'
    // Two persistent sessions subscribe and go offline: `cleaned` will be cleaned, `control` shows the message was queued.
    for (const id of ['cs-cleaned', 'cs-control']) {
      const { client } = await anonymous(t, p, id, false)
      await client.subscribeAsync(topic, { qos: 1 })
      await client.endAsync()
    }
    const publisher = await anonymous(t, p, 'cs-publisher', true)
    await publisher.client.publishAsync(topic, 'stale command', { qos: 1 })

    const once = await anonymous(t, p, 'cs-cleaned', true)
    assert.equal(once.sessionPresent, false)
    await once.client.endAsync()

    const resumed = await anonymous(t, p, 'cs-cleaned', false)
    assert.equal(resumed.sessionPresent, false, 'no session left to resume')
    // A marker published after a new subscription comes after anything the broker would have sent from a stale queue.
    await resumed.client.subscribeAsync(topic, { qos: 1 })
    await publisher.client.publishAsync(topic, 'marker', { qos: 1 })
    await waitFor(resumed.received, 'marker')
    assert.deepEqual(resumed.received, ['marker'], 'the stale command is gone with the session')

    const control = await anonymous(t, p, 'cs-control', false)
    assert.equal(control.sessionPresent, true)
    await waitFor(control.received, 'marker')
    assert.deepEqual(control.received, ['stale command', 'marker'], 'a session that was not cleaned kept its queue')
  })
}
