import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { Aedes } from 'aedes'
import { createInFlightDownlinks, type InFlight } from '../../src/push/in-flight-downlinks.ts'
import { openPacketPipe, startAedes, type PacketPipe } from '../helpers/packet-pipe.ts'

/** A connection that never sends CONNECT: ended by the test, not by aedes's connect timeout. */
function pipeOf (t: TestContext, aedes: Aedes): PacketPipe {
  const pipe = openPacketPipe(aedes)
  t.after(() => { pipe.conn.destroy() })
  return pipe
}

const device = (id: number): InFlight => ({ kind: 'device', deviceId: 'd1', pushId: 'p1', id, traceId: undefined })

test('a tracked downlink takes the client\'s next packet id as aedes would, and its PUBACK settles it once', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const { client } = pipeOf(t, aedes)
  const inFlight = createInFlightDownlinks()
  const first = inFlight.track(client, device(1))
  const second = inFlight.track(client, { kind: 'broadcast', pushId: 'b1' })
  assert.equal(second, first >= 65535 ? 1 : first + 1)
  assert.deepEqual(inFlight.settle(client, second), { kind: 'broadcast', pushId: 'b1' })
  assert.deepEqual(inFlight.settle(client, first), device(1))
  // A repeated PUBACK, and one for a packet id the agent never used, are not the agent's.
  assert.equal(inFlight.settle(client, first), undefined)
  assert.equal(inFlight.settle(client, second === 65535 ? 1 : second + 1), undefined)
})

test('packet ids are tracked per client: another client\'s PUBACK with the same id settles nothing', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const a = pipeOf(t, aedes).client
  const b = pipeOf(t, aedes).client
  const inFlight = createInFlightDownlinks()
  const id = inFlight.track(a, device(7))
  assert.equal(inFlight.settle(b, id), undefined)
  assert.deepEqual(inFlight.settle(a, id), device(7))
})
