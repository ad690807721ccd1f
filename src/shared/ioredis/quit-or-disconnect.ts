// mqemitter-redis's close() calls quit() on both of its connections and leaves the promise unhandled: with Redis
// down that is an unhandled rejection, which ends the process. quit() falls back to a hard disconnect instead,
// which still ends the connection.
// Touches: the connection's quit method (replaced per instance). Upstream (mqemitter-redis) lacks handling of
// quit()'s rejection.

import type { Redis } from 'ioredis'

export function quitOrDisconnect (conn: Redis): void {
  const quit = conn.quit.bind(conn)
  Reflect.set(conn, 'quit', async () => await quit().catch(() => { conn.disconnect(); return 'OK' as const }))
}
