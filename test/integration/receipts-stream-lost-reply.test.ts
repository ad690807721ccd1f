import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { decodeReceiptRecord, type ReceiptRecord } from '../../src/push/receipt-record.ts'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'
import { redisUrl, uniquePrefix } from '../helpers/services.ts'

// A receipt commit that Redis makes after the process gave up on its reply: the real Redis of scripts/services.sh
// holds every write (CLIENT PAUSE WRITE) until the process has logged the ack's commit as failed (its command
// timeout), then runs it. The receipt is acked in Redis; its record must reach the receipts spool without a restart.
// Redis runs a connection's commands in order, so a write of the node's still queued when the pause starts would
// hold the ack's read behind it, and the read would fail instead of the commit: the pause waits for the last write
// the PUBACK makes (the delivered mark).

test('an ack Redis commits after the process gave up on the reply still gets its receipt record', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const p = await startTestPlatform(t, { clusterPrefix: prefix })
  const { token } = await p.provision('lost-1')
  const client = await connectDevice(t, p.mqttUrl, 'lost-1', token)
  const got: number[] = []
  client.on('message', (_topic, payload) => { got.push((JSON.parse(payload.toString()) as { id: number }).id) })
  await client.subscribeAsync('devices/lost-1/down', { qos: 1 })
  const res = await p.api('POST', '/v1/admin/push', { deviceId: 'lost-1', data: 'x', qos: 1 })
  assert.equal(res.status, 202, JSON.stringify(res.body))
  const pushId = res.body.pushId as string
  const counts = async (): Promise<Record<string, number>> => (await p.api('GET', `/v1/admin/push/${pushId}`)).body.counts as Record<string, number>
  await waitUntil('the PUBACK counted', async () => (await counts()).delivered === 1, 30_000)

  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  // Long enough never to end by itself before the test unpauses; ended here whatever happens.
  t.after(async () => {
    await redis.call('CLIENT', 'UNPAUSE')
    await redis.quit()
  })
  await waitUntil('the delivered mark', async () => Number(await redis.hget(`${prefix}hist-meta:lost-1`, 'delivered')) === got[0], 30_000)
  await redis.call('CLIENT', 'PAUSE', '60000', 'WRITE')
  const ackFailed = (): boolean => p.logs.some((l) => l.event === 'push_agent_error' && l.what === 'ack')
  // Not acknowledged, as far as the node knows: it closes the connection (test/integration/device-ack-refused.test.ts).
  client.publish('devices/lost-1/ack', JSON.stringify({ id: got[0] }), { qos: 1 }, () => {})
  await waitUntil('the ack\'s commit to fail in the process', ackFailed, 60_000)
  await redis.call('CLIENT', 'UNPAUSE')
  await waitUntil('Redis to make the held ack', async () => (await counts()).acked === 1, 30_000)

  const spooled = async (): Promise<ReceiptRecord[]> => {
    const out: ReceiptRecord[] = []
    for await (const r of readSpool(join(p.dataDir, 'receipts'))) out.push(decodeReceiptRecord(r.payload))
    return out
  }
  await waitUntil('the acked record in the receipts spool', async () => (await spooled()).some((r) => r.pushId === pushId && r.state === 'acked'), 30_000)
  const checked = p.logs.find((l) => l.event === 'receipt_commit_checked')
  assert.equal(checked?.records, 1)
  assert.equal(checked?.kind, 'transition')
})
