import type { ServerResponse } from 'node:http'
import { PushlineError } from '../shared/errors.ts'

/**
 * A signal that aborts when the client closes its connection before the answer has been written: work still
 * waiting for its turn (a request gate's queue) is then dropped, since nobody would read its answer. The reason
 * is a refusal like the gate's own (IOT_ERR_BUSY), in case some byte of it still reaches the client.
 */
export function clientGone (res: ServerResponse): AbortSignal {
  const gone = new AbortController()
  const abort = (): void => {
    if (!res.writableEnded) gone.abort(new PushlineError('IOT_ERR_BUSY', 'the client closed its connection before its request was worked on', { retryAfterSeconds: 1, reason: 'client_gone' }))
  }
  // Node emits 'close' once per response: after the answer, or when the connection closed before it.
  if (res.socket === null || res.socket.destroyed) abort(); else res.once('close', abort)
  return gone.signal
}
