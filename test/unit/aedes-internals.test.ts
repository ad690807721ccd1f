import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { test } from 'node:test'
import type { Aedes } from 'aedes'
import { AEDES_ADAPTATIONS } from '../../src/broker/aedes/install-adaptations.ts'
import { checkAedesInternals, missingAedesInternals } from '../../src/broker/aedes/internals.ts'
import { isPushlineError } from '../../src/shared/errors.ts'
import { openPacketPipe, startAedes } from '../helpers/packet-pipe.ts'

test('the installed aedes has every private field the adaptations rely on', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  assert.doesNotThrow(() => { checkAedesInternals(aedes) })
  // And a client of the broker itself, not only the probe's.
  const pipe = openPacketPipe(aedes)
  assert.deepEqual(missingAedesInternals(aedes, pipe.client), [])
})

test('a missing field stops the start with IOT_ERR_DEPENDENCY naming it and the aedes version', { timeout: 60_000 }, async (t) => {
  const aedes = await startAedes(t)
  const pipe = openPacketPipe(aedes)
  const { _nextId: _dropped, ...clientWithoutNextId } = pipe.client as unknown as Record<string, unknown>
  assert.throws(() => { checkAedesInternals(aedes, clientWithoutNextId) }, (err: unknown) => {
    assert.ok(isPushlineError(err, 'IOT_ERR_DEPENDENCY'))
    assert.match(err.message, /aedes \d+\.\d+\.\d+ lacks client\._nextId/)
    assert.deepEqual(err.details?.missing, ['client._nextId'])
    return true
  })
})

test('a broker without its client map or a persistence method is refused, naming each', () => {
  const broker = { persistence: { outgoingStream () {} }, publish () {}, handle () {} }
  const absent = missingAedesInternals(broker, {})
  assert.ok(absent.includes('aedes.clients'))
  assert.ok(absent.includes('aedes.persistence.outgoingUpdate'))
  assert.ok(!absent.includes('aedes.persistence.outgoingStream'))
  assert.ok(absent.includes('client.deliverQoS'))
  assert.throws(() => { checkAedesInternals(broker as unknown as Aedes, {}) }, (err: unknown) => isPushlineError(err, 'IOT_ERR_DEPENDENCY') && err.message.includes('aedes unknown lacks aedes.clients'))
})

test('every adaptation file of the room is listed, in the order install-adaptations.ts installs them', () => {
  const files = readdirSync(new URL('../../src/broker/aedes/', import.meta.url)).filter((f) => f.endsWith('.ts'))
  const notInstalled = new Set(['internals.ts', 'install-adaptations.ts', 'resend-stored-queue.ts'])
  assert.deepEqual(AEDES_ADAPTATIONS.map((a) => a.file).sort(), files.filter((f) => !notInstalled.has(f)).sort())
})
