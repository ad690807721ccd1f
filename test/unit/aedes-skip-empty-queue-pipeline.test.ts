import assert from 'node:assert/strict'
import { test } from 'node:test'
import { installEmptyQueueShortcut } from '../../src/broker/aedes/skip-empty-queue-pipeline.ts'
import { skipIdleRoundTrips } from '../../src/broker/aedes/skip-idle-persistence-round-trips.ts'
import { spyOnPipeline } from '../helpers/pipeline-spy.ts'
import { connectPacket, memoryPersistence, openPacketPipe, startAedes } from '../helpers/packet-pipe.ts'

const realPipelines = spyOnPipeline()

test('a clean connect runs no stream pipeline; a persistent session\'s queue still drains through one', { timeout: 60_000 }, async (t) => {
  installEmptyQueueShortcut()
  const aedes = await startAedes(t, { persistence: skipIdleRoundTrips(memoryPersistence()) })

  const clean = openPacketPipe(aedes)
  clean.send(connectPacket('d-1'))
  await clean.next('connack')
  // aedes handles packets after CONNACK only once its connect sequence, the queue drain included, is done.
  clean.send({ cmd: 'pingreq' })
  await clean.next('pingresp')
  assert.equal(realPipelines(), 0)

  const persistent = openPacketPipe(aedes)
  persistent.send(connectPacket('d-2', { clean: false }))
  await persistent.next('connack')
  persistent.send({ cmd: 'pingreq' })
  await persistent.next('pingresp')
  assert.equal(realPipelines(), 1)
})
