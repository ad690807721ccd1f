import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { IPublishPacket as PublishPacket } from 'mqtt-packet'
import { Redis } from 'ioredis'
import redisPersistence from 'aedes-persistence-redis'
import { lookUpRetainedInOneRoundTrip } from '../../src/broker/aedes/look-up-retained-in-one-round-trip.ts'
import { sessionPersistence } from '../../src/broker/aedes/internals.ts'
import { connectPacket, openPacketPipe, spyOn, startAedes, subscribePacket } from '../helpers/packet-pipe.ts'
import { redisUrl, uniquePrefix } from '../helpers/services.ts'

// The retained messages of a SUBSCRIBE come from the Redis session store (aedes-persistence-redis) with
// aedes/look-up-retained-in-one-round-trip.ts installed: the same messages as the store's own lookup, wildcards
// included, and one round trip for all the filters without a wildcard.

interface RedisCommand { readonly name: string, readonly args: ReadonlyArray<string | Buffer> }

test('retained messages reach a subscriber, wildcards included, and the exact filters of a SUBSCRIBE are read in one round trip', { timeout: 60_000 }, async (t) => {
  const redis = new Redis(redisUrl(), { keyPrefix: `${uniquePrefix()}aedes:`, maxRetriesPerRequest: 2 })
  t.after(() => { redis.disconnect() })
  const persistence = lookUpRetainedInOneRoundTrip(redisPersistence({ conn: redis }), redis)
  const aedes = await startAedes(t, { persistence: persistence as never })
  const store = sessionPersistence(persistence)
  for (const [topic, payload] of [['a/1', 'one'], ['a/2', 'two'], ['w/x', 'wild'], ['w/y/z', 'too deep']]) {
    await store.storeRetained({ cmd: 'publish', topic: topic as string, payload: Buffer.from(payload as string), qos: 0, retain: true, dup: false })
  }
  const sent = spyOn(redis, 'sendCommand') as Array<[RedisCommand]>

  const pipe = openPacketPipe(aedes)
  pipe.send(connectPacket('sub-1'))
  await pipe.next('connack')

  // Exact filters with and without a retained message, and a wildcard that matches one of two.
  pipe.send(subscribePacket(1, [['a/1', 1], ['none/x', 1], ['a/2', 0], ['w/+', 0]]))
  await pipe.next('suback')
  const got: PublishPacket[] = []
  for (let i = 0; i < 3; i++) got.push(await pipe.next('publish') as PublishPacket)
  assert.deepEqual(got.map((p) => [p.topic, p.payload.toString(), p.retain]).sort(), [['a/1', 'one', true], ['a/2', 'two', true], ['w/x', 'wild', true]])
  for (const p of got.filter((p) => p.qos === 1)) pipe.send({ cmd: 'puback', messageId: p.messageId as number })

  // What a device subscribes to: exact filters, none of them retained. The marker is the retained message of a
  // later SUBSCRIBE on the same connection, whose lookup aedes starts after this one's.
  const filters = ['devices/d-1/down', 'broadcast/all', 'broadcast/groups/g1']
  const before = sent.length
  pipe.send(subscribePacket(2, filters.map((f) => [f, 1] as const)))
  await pipe.next('suback')
  pipe.send(subscribePacket(3, [['a/1', 0]]))
  await pipe.next('suback')
  const marker = await pipe.next('publish') as PublishPacket
  assert.equal(marker.topic, 'a/1')
  const reads = sent.slice(before).map(([c]) => c)
    .filter((c) => (c.name === 'hget' || c.name === 'hmget') && c.args.slice(1).some((a) => filters.includes(a.toString())))
    .map((c) => `${c.name} ${c.args.slice(1).map(String).join(' ')}`)
  assert.deepEqual(reads, [`hmget ${filters.join(' ')}`], 'one HMGET for the three filters, no HGET each')
})
