// JSON request bodies nested deeper than a fixed limit are refused with 400 before they are parsed. Parsing is
// not the problem; what comes after it is: the prototype-poisoning scan and schema validation walk the value
// recursively, and a few thousand levels of brackets overflow the stack (a 500).

import type { FastifyInstance } from 'fastify'
import { PushlineError } from '../shared/errors.ts'

/** Deepest nesting of objects and arrays a request body may have; API bodies need a handful of levels. */
export const MAX_JSON_DEPTH = 64

/** Whether `text` nests objects or arrays deeper than `max`; brackets inside strings do not count. */
export function nestsDeeperThan (text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return false
}

/** Replaces the JSON body parser with Fastify's own behind the depth check (same proto-poisoning rules, same limits). */
export function limitJsonDepth (app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // parseAs: 'string' hands a string; the type allows either.
    const text = typeof body === 'string' ? body : body.toString('utf8')
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      done(new PushlineError('IOT_ERR_JSON_TOO_DEEP', `JSON body nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels`), undefined)
      return
    }
    parse(request, text, done)
  })
}
