import { replaceKafkajsModule, type ReplacementState } from './replace-kafkajs-module.ts'

// kafkajs (2.2, pinned in package.json) frames every request in src/protocol/request.js: the size, the request
// header (API key, version, correlation id, client id) and the encoded body. It does so through two growing
// Encoders, so the body is copied twice, each time into zero-filled buffers that double as they grow: for a produce
// request of a batch of uplinks (about half a MiB) that was the largest kafkajs cost left on a shipping node.
// frameRequest() writes the same bytes into one buffer of the exact size, copying the body once.
//
// kafkajs's network/connection.js takes that module when it loads, so it goes in before kafkajs loads
// (./kafkajs-module.ts). test/unit/request-framing.test.ts compares both on the same requests and checks the
// installation.

/** What kafkajs's request modules return from encode(): an Encoder (`buffer` is a copy-free view of its bytes). */
interface EncodedBody {
  readonly buf: Buffer
  readonly buffer: Buffer
}

/** The arguments kafkajs's connection passes to its request framing. */
export interface FrameRequestArgs {
  readonly correlationId: number
  readonly clientId: string | null | undefined
  readonly request: {
    readonly apiKey: number
    readonly apiVersion: number
    encode (): Promise<EncodedBody> | EncodedBody
  }
}

/** The part of a kafkajs Encoder its connection reads from a framed request. */
export interface FramedRequest {
  readonly buf: Buffer
  readonly buffer: Buffer
  size (): number
}

/** size (int32) | API key (int16) | API version (int16) | correlation id (int32) | client id (int16 length, -1 for none) */
const HEAD = 4 + 2 + 2 + 4 + 2

export async function frameRequest ({ correlationId, clientId, request: { apiKey, apiVersion, encode } }: FrameRequestArgs): Promise<FramedRequest> {
  const payload = await encode()
  if (payload === null || payload === undefined || !Buffer.isBuffer(payload.buf)) throw new Error('value should be an instance of Encoder')
  const body = payload.buffer
  const id = clientId ?? null
  const idBytes = id === null ? 0 : Buffer.byteLength(id, 'utf8')
  const buf = Buffer.allocUnsafe(HEAD + idBytes + body.length)
  let at = buf.writeInt32BE(buf.length - 4, 0)
  at = buf.writeInt16BE(apiKey, at)
  at = buf.writeInt16BE(apiVersion, at)
  at = buf.writeInt32BE(correlationId, at)
  at = buf.writeInt16BE(id === null ? -1 : idBytes, at)
  if (id !== null) at += buf.write(id, at, idBytes, 'utf8')
  body.copy(buf, at)
  return { buf, buffer: buf, size: () => buf.length }
}

export type RequestFramingState = ReplacementState

/**
 * Puts frameRequest() in the place of kafkajs's request framing module. Idempotent. 'too-late' when kafkajs's
 * connection.js loaded before in this process: it keeps its own framing (the same bytes, more CPU).
 */
export function installRequestFraming (require: NodeJS.Require): RequestFramingState {
  return replaceKafkajsModule(require, 'kafkajs/src/protocol/request.js', 'kafkajs/src/network/connection.js', frameRequest)
}
