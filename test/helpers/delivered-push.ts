import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { waitUntil } from './eventually.ts'
import { connectDevice } from './mqtt.ts'
import type { TestPlatform } from './platform.ts'

export interface DeliveredPush {
  readonly client: MqttClient
  readonly token: string
  readonly pushId: string
  /** The downlink's id, which the device's application ack names: `{"id": downlinkId}` on devices/{id}/ack. */
  readonly downlinkId: number
  /** The push as GET /v1/admin/push/{pushId} shows it now. */
  push (): Promise<{ counts: Record<string, number>, devices: Array<{ deviceId: string, state: string }> }>
}

/**
 * A device provisioned, connected and subscribed at QoS 1, with one QoS 1 push that reached it and that its PUBACK
 * made `delivered`: where the tests of the application ack start.
 */
export async function deliveredPush (t: TestContext, p: TestPlatform, deviceId: string): Promise<DeliveredPush> {
  const { token } = await p.provision(deviceId)
  const client = await connectDevice(t, p.mqttUrl, deviceId, token)
  const ids: number[] = []
  client.on('message', (_topic, payload) => { ids.push((JSON.parse(payload.toString()) as { id: number }).id) })
  await client.subscribeAsync(`devices/${deviceId}/down`, { qos: 1 })
  const res = await p.api('POST', '/v1/admin/push', { deviceId, data: 'x', qos: 1 })
  assert.equal(res.status, 202, JSON.stringify(res.body))
  const pushId = res.body.pushId as string
  const push: DeliveredPush['push'] = async () => (await p.api('GET', `/v1/admin/push/${pushId}`)).body
  await waitUntil('the PUBACK counted', async () => (await push()).counts.delivered === 1, 30_000)
  const downlinkId = ids[0]
  assert.ok(downlinkId !== undefined, 'the PUBACK was counted for a downlink the device got')
  return { client, token, pushId, downlinkId, push }
}
