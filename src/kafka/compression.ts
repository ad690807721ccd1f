import { promisify } from 'node:util'
import { gzip, unzip } from 'node:zlib'
import type { CompressionTypes } from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import type { KafkaCompression } from '../config/settings.ts'
import { kafkajs } from './kafkajs-module.ts'

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
  const { CompressionCodecs, CompressionTypes: types } = kafkajs()
  CompressionCodecs[types.GZIP] = gzipCodec(gzipLevel)
  CompressionCodecs[types.Snappy] = SnappyCodec
  switch (compression) {
    case 'gzip': return types.GZIP
    case 'snappy': return types.Snappy
    case 'none': return types.None
  }
}
