// mqemitter-redis reports Redis errors on its `state` emitter, which its type declarations leave out; without a
// listener there, an error inside it crashes the process. The one private field of mqemitter-redis the platform
// uses. Upstream lacks the field in its types (mcollina/mqemitter-redis#2 added the emitter).

import type { EventEmitter } from 'node:events'
import { PushlineError } from '../shared/errors.ts'

/** The emitter mqemitter-redis reports errors on; IOT_ERR_DEPENDENCY when this mqemitter-redis has none. */
export function stateOf (mq: unknown): EventEmitter {
  const state: unknown = typeof mq === 'object' && mq !== null ? Reflect.get(mq, 'state') : undefined
  if (typeof state !== 'object' || state === null || typeof (state as Partial<EventEmitter>).on !== 'function') {
    throw new PushlineError('IOT_ERR_DEPENDENCY', 'mqemitter-redis has no `state` emitter, which the platform listens on for Redis errors: install the mqemitter-redis version package.json pins', { dependency: 'mqemitter-redis', missing: ['state'] })
  }
  return state as EventEmitter
}
