// Memory and CPU per connection (bench/idle-connections.ts, heap snapshots; bench/fleet-online.ts --profile): aedes
// gives every client an mqtt-packet parser that holds more than it needs for the life of the connection.
// - It buffers incoming bytes in a `bl` BufferListStream, a Duplex stream with its own readable and writable state
//   (about 0.9 KB, and the CPU of building a Duplex at every accept), of which it uses only the list methods (append,
//   consume, slice, readUInt*). The plain BufferList of the same `bl` module has exactly those, without the stream.
//   The parser makes its list in `_resetState` (at construction and after a parse error); that method, on the
//   parser's prototype, makes a plain list instead, so no stream is built at all.
// - It keeps the whole CONNECT packet as its settings (client id, username, the password, i.e. the device's
//   token, and through the password's Buffer the socket chunk it was read from: about 0.5 KB), though it reads
//   only protocolVersion and bridgeMode from it afterwards.
// Touches: mqtt-packet's Parser.prototype._resetState (replaced once, for every parser of the process: aedes's and
// MQTT.js's, which share the module) and client._parser.settings (replaced after CONNECT). Upstream (mqtt-packet)
// lacks both choices. Both steps change nothing on a parser of another shape.

import mqttPacket from 'mqtt-packet'

const PLAIN_LISTS = Symbol.for('pushline.parserPlainLists')

/** What mqtt-packet 9's `_resetState` sets, and nothing else: the replacement sets the same fields. */
const RESET_FIELDS = ['packet', 'error', '_list', '_stateCounter']

interface ListLike {
  readonly length: number
  /** bl exports its plain BufferList as a property of the stream constructor. */
  readonly constructor: { readonly BufferList?: new () => ListLike }
}

interface ParserLike {
  _list?: ListLike
  settings?: { readonly cmd?: string, readonly protocolVersion?: number, readonly bridgeMode?: boolean }
}

interface ResetState {
  packet?: object
  error?: Error | null
  _list?: ListLike
  _stateCounter?: number
}

interface ParserPrototype {
  _resetState?: (this: ResetState) => void
  [PLAIN_LISTS]?: true
}

/**
 * Makes every mqtt-packet parser built from now on (and every one reset after an error) buffer in a plain
 * BufferList. Returns false and changes nothing when already done, or when `_resetState` is not the shape this was
 * written for (it sets other fields, or its list has no plain BufferList beside it). `probe` is a parser whose
 * prototype is patched: by default one from the installed mqtt-packet, the module aedes builds its parsers with.
 */
export function buildParsersOnPlainLists (probe: unknown = mqttPacket.parser()): boolean {
  const proto = (typeof probe === 'object' && probe !== null ? Object.getPrototypeOf(probe) : null) as ParserPrototype | null
  const reset = proto?._resetState
  if (proto === null || typeof reset !== 'function' || proto[PLAIN_LISTS] === true) return false
  // What the original sets, read from a call on a bare object: a field added by a later version means hands off.
  const fresh: ResetState = {}
  reset.call(fresh)
  const Plain = fresh._list?.constructor.BufferList
  const Packet = fresh.packet?.constructor as (new () => object) | undefined
  if (Object.keys(fresh).sort().join() !== [...RESET_FIELDS].sort().join() || Plain === undefined || Packet === undefined) return false
  proto._resetState = function (this: ResetState) {
    this.packet = new Packet()
    this.error = null
    this._list = new Plain()
    this._stateCounter = 0
  }
  Object.defineProperty(proto, PLAIN_LISTS, { value: true })
  return true
}

/**
 * Once the CONNECT is parsed (preConnect onwards), replaces the parser's copy of it with the two fields it reads.
 * Returns false and changes nothing when the parser holds no CONNECT packet.
 */
export function releaseConnectPacket (client: unknown): boolean {
  const parser = (client as { _parser?: ParserLike } | null)?._parser
  const settings = parser?.settings
  if (parser === undefined || settings === undefined || settings.cmd !== 'connect' || typeof settings.protocolVersion !== 'number') return false
  parser.settings = { protocolVersion: settings.protocolVersion, ...(settings.bridgeMode !== undefined && { bridgeMode: settings.bridgeMode }) }
  return true
}
