// Memory per idle connection (bench/idle-connections.ts, heap snapshots): aedes gives every client an
// mqtt-packet parser that holds more than it needs for the life of the connection.
// - It buffers incoming bytes in a `bl` BufferListStream, a Duplex stream with its own readable and writable state
//   (about 0.9 KB), of which it uses only the list methods (append, consume, slice, readUInt*). The plain
//   BufferList of the same `bl` module has exactly those, without the stream.
// - It keeps the whole CONNECT packet as its settings (client id, username, the password, i.e. the device's
//   token, and through the password's Buffer the socket chunk it was read from: about 0.5 KB), though it reads
//   only protocolVersion and bridgeMode from it afterwards.
// Touches: client._parser._list (replaced once per client) and client._parser.settings (replaced after CONNECT).
// Upstream (mqtt-packet) lacks both choices. Both steps change nothing on a parser of another shape.

interface ListLike {
  readonly length: number
  /** bl exports its plain BufferList as a property of the stream constructor. */
  readonly constructor: { readonly BufferList?: new () => ListLike }
}

interface ParserLike {
  _list?: ListLike
  settings?: { readonly cmd?: string, readonly protocolVersion?: number, readonly bridgeMode?: boolean }
}

/**
 * Swaps the parser's buffer of a new client (nothing parsed yet) for a plain BufferList. Returns false and
 * changes nothing when the parser is not the shape this was written for (another mqtt-packet or bl version).
 */
export function useLeanParserBuffer (client: unknown): boolean {
  const parser = (client as { _parser?: ParserLike } | null)?._parser
  const list = parser?._list
  const Plain = list?.constructor.BufferList
  if (parser === undefined || list === undefined || Plain === undefined || list.length !== 0 || list instanceof Plain) return false
  parser._list = new Plain()
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
