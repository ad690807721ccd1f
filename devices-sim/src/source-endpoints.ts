// Where each device's sockets come from with --source-addresses: an address and a fixed local port.
//
// Binding to an address with port 0 makes Linux search for a free port. libuv sets SO_REUSEADDR on every bound
// socket, and for such a socket the search covers only the lower half of the ephemeral range, odd ports first
// (inet_csk_find_open_port): about 7,000 ports per address. As they fill, every connect walks more of them, and once
// they are gone every connect walks thousands of ports in the kernel before it finds one: the simulator's own CPU
// per device grew with the fleet for that alone. A real fleet has an address per device, so that search is the
// simulator's waste: each device gets a port of its own, numbered per address, and the bind finds it at once.

export interface SourceEndpoint {
  readonly address: string
  /** Undefined past the numbered ports: the kernel chooses. */
  readonly port: number | undefined
}

/** Local ports handed out, per address: below the kernel's default ephemeral range (32768-60999), so not a port
 *  that a listener bound to port 0 (any test or benchmark server) may hold. */
export const FIRST_LOCAL_PORT = 10_000
export const LAST_LOCAL_PORT = 32_767

/** Endpoints of devices `from` … `from + count - 1` of the fleet: device n uses address n mod k, port FIRST + n div k. */
export function sourceEndpoints (addresses: readonly string[], from: number, count: number): SourceEndpoint[] {
  if (addresses.length === 0) return []
  return Array.from({ length: count }, (_, i) => {
    const n = from + i
    const port = FIRST_LOCAL_PORT + Math.floor(n / addresses.length)
    return { address: addresses[n % addresses.length] as string, port: port <= LAST_LOCAL_PORT ? port : undefined }
  })
}
