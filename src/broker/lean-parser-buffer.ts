// Memory per idle connection: aedes gives every client an mqtt-packet parser, which buffers incoming bytes in a
// `bl` BufferListStream, a Duplex stream with its own readable and writable state (about 0.9 KB per connection,
// measured with bench/idle-connections.ts) of which the parser uses only the list methods (append, consume,
// slice, readUInt*). The plain BufferList of the same `bl` module has exactly those, without the stream.

interface ListLike {
  readonly length: number
  /** bl exports its plain BufferList as a property of the stream constructor. */
  readonly constructor: { readonly BufferList?: new () => ListLike }
}

interface ParserLike {
  _list?: ListLike
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
