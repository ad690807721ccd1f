import assert from 'node:assert/strict'
import stream, { Readable, Transform, Writable } from 'node:stream'
import { test } from 'node:test'
import { emptyQueueStream, installEmptyQueueShortcut } from '../../src/broker/aedes/skip-empty-queue-pipeline.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { spyOnPipeline } from '../helpers/pipeline-spy.ts'
import { startTestPlatform } from '../helpers/platform.ts'

// Installed before any platform starts in this process, so the shortcut wraps it: the spy sees exactly the
// pipelines that reach Node's own, which is what aedes's named import of `pipeline` now runs.
const realPipelineCalls = spyOnPipeline()

test('a pipeline from a clean session\'s empty queue calls back on a later tick and never touches the destination', { timeout: 120_000 }, async () => {
  installEmptyQueueShortcut()
  const before = realPipelineCalls()
  let transformed = 0
  const through = new Transform({ objectMode: true, transform (_chunk, _enc, next) { transformed++; next() } })
  let calledBack = false
  const done = new Promise<unknown>((resolve) => {
    stream.pipeline(emptyQueueStream(), through, (err) => { calledBack = true; resolve(err) })
  })
  assert.equal(calledBack, false, 'not synchronously, as with the real pipeline')
  assert.equal(await done, undefined)
  assert.equal(transformed, 0)
  assert.equal(realPipelineCalls(), before)
})

test('any other pipeline still runs through Node\'s own and moves its data', { timeout: 120_000 }, async () => {
  installEmptyQueueShortcut()
  installEmptyQueueShortcut()
  const before = realPipelineCalls()
  const seen: number[] = []
  await new Promise<void>((resolve, reject) => {
    stream.pipeline(
      Readable.from([1, 2, 3]),
      new Transform({ objectMode: true, transform (n: number, _enc, next) { next(null, n * 10) } }),
      new Writable({ objectMode: true, write (n: number, _enc, next) { seen.push(n); next() } }),
      (err) => { if (err != null) reject(err); else resolve() }
    )
  })
  assert.deepEqual(seen, [10, 20, 30])
  assert.equal(realPipelineCalls(), before + 1, 'installing twice does not wrap twice')
  const { pipeline: promised } = await import('node:stream/promises')
  await promised(Readable.from(['x']), new Writable({ write (_c, _e, next) { next() } }))
})

test('aedes connects a clean session without a stream pipeline, and drains a persistent session\'s queue through one', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const clean = await p.provision('shortcut-clean')
  const persistent = await p.provision('shortcut-persistent')

  // aedes handles a PUBLISH only once its connect sequence, the queue drain included, has finished.
  let before = realPipelineCalls()
  const a = await connectDevice(t, p.mqttUrl, 'shortcut-clean', clean.token, { clean: true })
  await a.publishAsync('devices/shortcut-clean/telemetry', 'x', { qos: 1 })
  assert.equal(realPipelineCalls(), before, 'the clean connect built no pipeline')

  before = realPipelineCalls()
  const b = await connectDevice(t, p.mqttUrl, 'shortcut-persistent', persistent.token, { clean: false })
  await b.publishAsync('devices/shortcut-persistent/telemetry', 'x', { qos: 1 })
  assert.ok(realPipelineCalls() > before, 'a persistent connect still drains its stored queue (the spy sees aedes\'s calls)')
})
