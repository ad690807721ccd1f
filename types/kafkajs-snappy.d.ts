// kafkajs-snappy ships no types: its default export is a kafkajs compression codec factory.
declare module 'kafkajs-snappy' {
  interface SnappyCodec {
    compress (encoder: { buffer: Buffer }): Promise<Buffer>
    decompress (buffer: Buffer): Promise<Buffer>
  }
  export default function createSnappyCodec (): SnappyCodec
}
