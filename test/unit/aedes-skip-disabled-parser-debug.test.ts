import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet'
import { buildParsersOnPlainLists } from '../../src/broker/aedes/slim-client-parser.ts'
import { skipDisabledParserDebug } from '../../src/broker/aedes/skip-disabled-parser-debug.ts'

// The parser's debug calls, off: a parser never reaches its `debug` logger once the adaptation is in (the logger is
// switched on after the install, so each call it still made would be written). Changes the process (this file's).

interface DebugModule {
  enable: (namespaces: string) => void
  disable: () => string
  log: (...args: unknown[]) => void
}

/** The `debug` module that mqtt-packet's parser.js took its logger from. */
function parserDebug (): DebugModule {
  const parserPath = createRequire(import.meta.url).resolve('mqtt-packet/parser.js')
  return createRequire(parserPath)('debug') as DebugModule
}

/** The packets a fresh parser emits for `bytes`, and the lines its debug logger wrote meanwhile. */
function parseLogged (bytes: Buffer): { packets: Packet[], lines: number } {
  const debug = parserDebug()
  const log = debug.log
  let lines = 0
  debug.log = () => { lines++ }
  debug.enable('mqtt-packet:parser')
  try {
    const parser = mqttParser()
    const packets: Packet[] = []
    parser.on('packet', (p: Packet) => packets.push(p))
    parser.parse(bytes)
    return { packets, lines }
  } finally {
    debug.disable()
    debug.log = log
  }
}

const publish = generate({ cmd: 'publish', topic: 'devices/d1/telemetry', payload: Buffer.from('{"t":21.5}'), qos: 1, messageId: 7, retain: false, dup: false })

test('with its namespace off at install, the parser no longer calls its debug logger, and parses the same', { timeout: 60_000 }, () => {
  const before = parseLogged(publish)
  assert.ok(before.lines > 5, `mqtt-packet's parser logs every step (${before.lines} lines): the case this is for`)

  buildParsersOnPlainLists()
  const replaced = skipDisabledParserDebug()
  assert.ok(replaced.includes('parse') && replaced.includes('_parsePublish'), `replaced: ${replaced.join(', ')}`)
  assert.equal(replaced.includes('_resetState'), false, 'the method slim-client-parser.ts replaced is left alone')
  assert.deepEqual(skipDisabledParserDebug(), [], 'a second call changes nothing')

  const after = parseLogged(publish)
  assert.equal(after.lines, 0, 'no debug call left on the parse path')
  assert.deepEqual(after.packets, before.packets, 'the same packet')
  const split = mqttParser()
  const got: Packet[] = []
  split.on('packet', (p: Packet) => got.push(p))
  for (const byte of Buffer.concat([publish, generate({ cmd: 'puback', messageId: 7 })])) split.parse(Buffer.from([byte]))
  assert.deepEqual(got.map((p) => p.cmd), ['publish', 'puback'], 'packets split at every byte')
  assert.deepEqual(got[0], before.packets[0])
})
