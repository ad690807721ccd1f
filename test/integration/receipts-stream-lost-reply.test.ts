import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { decodeReceiptRecord, type ReceiptRecord } from '../../src/push/receipt-record.ts'
import { readSpool } from '../../src/uplink/file-spool.ts'
import { waitUntil } from '../helpers/eventually.ts'
import { deliveredPush } from '../helpers/delivered-push.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform } from '../helpers/platform.ts'
import { redisUrl, uniquePrefix } from '../helpers/services.ts'

// A receipt commit that Redis makes after the process gave up on its reply: the real Redis of scripts/services.sh
// holds every write (CLIENT PAUSE WRITE) until the process has logged the ack's commit as failed (its command
// timeout), then runs it. The receipt is acked in Redis; its record must reach the receipts spool without a restart.
// Redis runs a connection's commands in order, so a write the node sends just before the ack's read (the delivered
// mark of the PUBACK, a heartbeat, a sweep) holds the read behind it, and the read fails instead of the commit. The
// pause waits for the delivered mark; when another write still got in the way (the node logged no downlink_acked:
// the read never returned), nothing was committed and the test tries again from a new connection.

test('an ack Redis commits after the process gave up on the reply still gets its receipt record', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix()
  const p = await startTestPlatform(t, { clusterPrefix: prefix })
  const delivered = await deliveredPush(t, p, 'lost-1')
  let client = delivered.client
  const { token, pushId, downlinkId } = delivered
  const counts = async (): Promise<Record<string, number>> => (await delivered.push()).counts

  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  // Long enough never to end by itself before the test unpauses; ended here whatever happens.
  t.after(async () => {
    await redis.call('CLIENT', 'UNPAUSE')
    await redis.quit()
  })
  await waitUntil('the delivered mark', async () => Number(await redis.hget(`${prefix}hist-meta:lost-1`, 'delivered')) === downlinkId, 30_000)
  for (let attempt = 1; ; attempt++) {
    await redis.call('CLIENT', 'PAUSE', '60000', 'WRITE')
    const from = p.logs.length
    const since = (event: string): boolean => p.logs.slice(from).some((l) => l.event === event && (event !== 'push_agent_error' || l.what === 'ack'))
    // Not acknowledged, as far as the node knows: it closes the connection (test/integration/device-ack-refused.test.ts).
    client.publish('devices/lost-1/ack', JSON.stringify({ id: downlinkId }), { qos: 1 }, () => {})
    await waitUntil('the ack to fail in the process', () => since('push_agent_error'), 60_000)
    if (since('downlink_acked')) break
    await redis.call('CLIENT', 'UNPAUSE')
    assert.ok(attempt < 5, `the ack's read was held behind another write of the node ${attempt} times`)
    client = await connectDevice(t, p.mqttUrl, 'lost-1', token)
  }
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
