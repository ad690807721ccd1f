import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { loadKafkajs } from '../../src/kafka/kafkajs-module.ts'
import { frameRequest, type FrameRequestArgs } from '../../src/kafka/request-framing.ts'

// The one-copy framing must write the bytes kafkajs's own framing writes, and it must be the one kafkajs's connections
// load. This file takes kafkajs's own framing and Encoder as the reference before it loads kafkajs, and loads kafkajs
// only through loadKafkajs().

const require = createRequire(import.meta.url)
const FRAME = 'kafkajs/src/protocol/request.js'
const CONNECTION = 'kafkajs/src/network/connection.js'
interface Encoder { readonly buf: Buffer, readonly buffer: Buffer, writeInt32 (v: number): Encoder, writeString (v: string | null): Encoder, writeBytes (v: Buffer): Encoder }
const kafkajsFrame = require(FRAME) as (args: FrameRequestArgs) => Promise<{ buffer: Buffer }>
const EncoderClass = require('kafkajs/src/protocol/encoder.js') as new () => Encoder

const body = (bytes: number): Encoder => new EncoderClass().writeInt32(7).writeString('topic').writeBytes(Buffer.alloc(bytes, 0xab))
/** A body as src/kafka/produce-request-encoding.ts returns it: a plain buffer, `buffer` being the same one. */
const plainBody = (bytes: number): { buf: Buffer, buffer: Buffer } => {
  const buf = Buffer.alloc(bytes, 0x5c)
  return { buf, buffer: buf }
}

test('frames requests byte for byte as kafkajs does', { timeout: 10_000 }, async () => {
  const cases: FrameRequestArgs[] = [
    { correlationId: 1, clientId: 'pushline-node-1', request: { apiKey: 0, apiVersion: 7, encode: async () => body(600_000) } },
    { correlationId: 2 ** 31 - 1, clientId: 'clïent-ü 🚀', request: { apiKey: 3, apiVersion: 5, encode: async () => body(0) } },
    { correlationId: 0, clientId: null, request: { apiKey: 18, apiVersion: 2, encode: async () => body(10) } },
    { correlationId: 9, clientId: '', request: { apiKey: 1, apiVersion: 11, encode: async () => plainBody(1234) } },
    // encode() of some kafkajs requests returns the Encoder itself, not a promise
    { correlationId: 5, clientId: 'x', request: { apiKey: 19, apiVersion: 3, encode: () => body(77) } }
  ]
  for (const args of cases) {
    const ours = await frameRequest(args)
    const theirs = await kafkajsFrame(args)
    assert.deepEqual(ours.buffer, theirs.buffer)
    assert.equal(ours.size(), theirs.buffer.length)
    assert.equal(ours.buf, ours.buffer)
  }
  await assert.rejects(frameRequest({ correlationId: 1, clientId: 'a', request: { apiKey: 0, apiVersion: 3, encode: async () => ({ buffer: Buffer.alloc(1) }) as never } }), /instance of Encoder/)
})

test('is what kafkajs\'s connections load when kafkajs is loaded through loadKafkajs()', { timeout: 10_000 }, () => {
  assert.equal(require.cache[require.resolve(CONNECTION)], undefined, 'kafkajs\'s connection must not be loaded yet in this file')
  const first = loadKafkajs()
  assert.equal(first.framing, 'installed')
  assert.equal(typeof first.kafkajs.Kafka, 'function')
  assert.notEqual(require.cache[require.resolve(CONNECTION)], undefined, 'kafkajs loaded its connection module')
  assert.equal(require(FRAME), frameRequest)
  assert.equal(loadKafkajs().framing, 'already-installed')
})
