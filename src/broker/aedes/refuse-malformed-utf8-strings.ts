// MQTT 3.1.1 section 1.5.3: a UTF-8 encoded string in a packet (topic names, subscription filters, client id,
// username) must be well-formed UTF-8 and must not hold U+0000; a receiver that finds either closes the
// connection. aedes's parser (mqtt-packet) decodes strings leniently (invalid bytes become U+FFFD), and a topic with
// broken bytes would be PUBACKed and dropped instead. This checks the bytes of every string the parser reads.

import { isUtf8 } from 'node:buffer'
// Touches: client._parser._parseString (wrapped per client), _parser._list and _parser._pos (read). Upstream
// (mqtt-packet) lacks a strict string mode.

import type { Client } from 'aedes'
import { clientInternals, type ParserInternals } from './internals.ts'

/** Well-formed UTF-8 without U+0000 (overlong forms and encoded surrogates are not well-formed). */
export function isMqttString (bytes: Buffer): boolean {
  return !bytes.includes(0) && isUtf8(bytes)
}

/**
 * Makes the client's parser fail on a malformed string, as it fails on a string cut short: the packet is not
 * emitted, the parser reports an error and aedes closes the connection. `onRefused` is told first.
 */
export function refuseMalformedStrings (client: Client, onRefused: () => void): void {
  const parser = clientInternals(client)._parser
  const parseString = parser._parseString
  parser._parseString = function (this: ParserInternals) {
    const start = this._pos
    const text = parseString.call(this)
    // Only a string that decoded to U+FFFD (what broken bytes become, or itself) or U+0000 needs its bytes read again.
    if (text === null || (!text.includes('\uFFFD') && !text.includes('\u0000'))) return text
    // Its bytes follow the two-byte length.
    if (isMqttString(this._list.slice(start + 2, this._pos))) return text
    onRefused()
    return null
  }
}
