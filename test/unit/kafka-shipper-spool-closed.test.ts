import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ProducerRecord } from 'kafkajs'
import pino from 'pino'
import { createKafkaShipper } from '../../src/uplink/kafka-shipper.ts'
import { openFileSpool } from '../../src/uplink/file-spool.ts'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { standInKafka } from '../helpers/kafka-stand-in.ts'

// A shipper whose spool is closed under it (its owner closed them in the wrong order) stops shipping, instead of
// asking the closed spool again and again: that loop never yields to timers or I/O, so nothing else in the process
// would run again. The scenario runs in a child process, so that a spinning loop fails the test (the test can still
// time out and kill the child) instead of hanging it. A unit test: the Kafka client is an
// in-process stand-in; the spool is a real one.

interface Report { readonly stopped: boolean, readonly events: string[] }

async function scenario (dir: string): Promise<Report> {
  const events: string[] = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => { events.push((JSON.parse(line) as { event?: string }).event ?? '') } })
  const spool = await openFileSpool({ dir, fsync: 'never' })
  await spool.append({ msgId: 'm1', deviceId: 'd1', topic: 'devices/d1/telemetry', kind: 'telemetry', qos: 1, nodeId: 'n1', receivedAt: 1_700_000_000_000, traceId: 't'.repeat(32), payload: Buffer.from('{}') })
  const sends: ProducerRecord[] = []
  const shipper = createKafkaShipper({
    kafka: standInKafka(sends, 1),
    spool,
    logger,
    telemetryTopic: 'telemetry',
    topics: [{ topic: 'telemetry', numPartitions: 1 }],
    batchRecords: 10,
    batchBytes: 1_000_000,
    lingerMs: 0,
    compression: 'none',
    gzipLevel: 1,
    deadLetterPath: join(dir, 'dead-letters')
  })
  shipper.start()
  await waitUntil('the record shipped', () => shipper.status().shippedRecords >= 1)
  await spool.close()
  // Runs only if the shipper's loop gives the event loop back.
  await new Promise((resolve) => setTimeout(resolve, 0))
  await shipper.close(0)
  return { stopped: true, events }
}

const SCENARIO_DIR = 'PUSHLINE_TEST_SHIPPER_SCENARIO_DIR'

if (process.env[SCENARIO_DIR] !== undefined) {
  process.send?.(await scenario(process.env[SCENARIO_DIR]))
  process.disconnect?.()
} else {
  test('a shipper whose spool closed first stops instead of spinning', { timeout: 120_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pushline-spool-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, [SCENARIO_DIR]: dir }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    t.after(() => { child.kill('SIGKILL') })
    const report = await bounded('the child to report that the shipper stopped', new Promise<Report>((resolve, reject) => {
      child.once('message', (m) => { resolve(m as Report) })
      child.once('error', reject)
      child.once('exit', (code) => { reject(new Error(`the child exited (${code}) without a report`)) })
    }))
    assert.equal(report.stopped, true)
    assert.ok(report.events.includes('shipper_spool_closed'), `the stop is logged: ${report.events.join(', ')}`)
  })
}
