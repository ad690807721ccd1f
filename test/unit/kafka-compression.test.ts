import { test } from 'node:test'
import assert from 'node:assert/strict'
import { gunzipSync, gzipSync } from 'node:zlib'
import kafkajs, { CompressionTypes } from 'kafkajs'
import { setUpCompression } from '../../src/kafka/compression.ts'

// The codecs the shipper registers with kafkajs: the setting's compression type, gzip at the configured level.

const records = Buffer.from(Array.from({ length: 200 }, (_, i) => `{"device":"dev-${i % 7}","t":${20 + (i % 5)},"seq":${i}}`).join(''))

test('each setting maps to its kafkajs compression type', { timeout: 10_000 }, () => {
  assert.equal(setUpCompression('none', 1), CompressionTypes.None)
  assert.equal(setUpCompression('snappy', 1), CompressionTypes.Snappy)
  assert.equal(setUpCompression('gzip', 1), CompressionTypes.GZIP)
})

test('gzip compresses at the configured zlib level and round-trips', { timeout: 10_000 }, async () => {
  for (const level of [1, 9]) {
    setUpCompression('gzip', level)
    const codec = kafkajs.CompressionCodecs[CompressionTypes.GZIP]() as { compress: (e: { buffer: Buffer }) => Promise<Buffer>, decompress: (b: Buffer) => Promise<Buffer> }
    const compressed = await codec.compress({ buffer: records })
    assert.ok(compressed.equals(gzipSync(records, { level })), `level ${level}`)
    assert.ok(gunzipSync(compressed).equals(records))
    assert.ok((await codec.decompress(compressed)).equals(records))
  }
})

test('snappy round-trips through the registered codec', { timeout: 10_000 }, async () => {
  setUpCompression('snappy', 1)
  const codec = kafkajs.CompressionCodecs[CompressionTypes.Snappy]() as { compress: (e: { buffer: Buffer }) => Promise<Buffer>, decompress: (b: Buffer) => Promise<Buffer> }
  const compressed = await codec.compress({ buffer: records })
  assert.ok(compressed.length < records.length)
  assert.ok(Buffer.from(await codec.decompress(compressed)).equals(records))
})
