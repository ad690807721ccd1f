import { promisify } from 'node:util'
import { gzip, unzip } from 'node:zlib'
import kafkajs, { CompressionTypes } from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import type { KafkaCompression } from '../config/settings.ts'

// The compression codecs the node can produce with, all without a native build: gzip from Node's zlib (on the
// libuv thread pool, off the event loop) at a chosen level, and Snappy in pure JavaScript (kafkajs-snappy, on the
// event loop). kafkajs keeps codecs in one table per process: the last node set up in a process sets the gzip level.

const gzipAsync = promisify(gzip)
const unzipAsync = promisify(unzip)

interface CodecInstance {
  compress (encoder: { buffer: Buffer }): Promise<Buffer>
  decompress (buffer: Buffer): Promise<Buffer>
}

function gzipCodec (level: number): () => CodecInstance {
  return () => ({
    compress: (encoder: { buffer: Buffer }) => gzipAsync(encoder.buffer, { level }),
    decompress: (buffer: Buffer) => unzipAsync(buffer)
  })
}

/** Registers the codecs with kafkajs and returns the kafkajs compression type of the setting. */
export function setUpCompression (compression: KafkaCompression, gzipLevel: number): CompressionTypes {
  // Not a named export to ES modules: kafkajs builds its exports in a way Node's CommonJS analysis does not see.
  const { CompressionCodecs } = kafkajs
  CompressionCodecs[CompressionTypes.GZIP] = gzipCodec(gzipLevel)
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  switch (compression) {
    case 'gzip': return CompressionTypes.GZIP
    case 'snappy': return CompressionTypes.Snappy
    case 'none': return CompressionTypes.None
  }
}
