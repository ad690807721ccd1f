// Runs a compiled platform (its startPlatform, configured from the environment as `npm start` is) and, in the same
// process, the floor of bench/onboarding.ts: a second Fastify server whose one route does one Redis GET and
// answers. Both share the process's event loop and CPU, so the floor is what any route of this process could do.
//
//   node --import tsx bench/lib/api-host.ts <build>/src/main.js
//
// Prints "floor http://host:port/floor", then the platform's HTTP API line.

import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import type * as ConfigModule from '../../src/config/load-config.ts'
import type * as LoggerModule from '../../src/shared/logger.ts'
import type * as MainModule from '../../src/main.ts'

const main = process.argv[2]
if (main === undefined) throw new Error('usage: api-host.ts <build>/src/main.js')
const build = dirname(resolve(main))
const load = async <T> (file: string): Promise<T> => await import(pathToFileURL(join(build, file)).href) as T
const { startPlatform } = await load<typeof MainModule>('main.js')
const { loadConfig } = await load<typeof ConfigModule>('config/load-config.js')
const { createLogger } = await load<typeof LoggerModule>('shared/logger.js')

const config = loadConfig()
const platform = await startPlatform(config, createLogger({ level: config.logLevel, nodeId: config.nodeId }))

// A connection of its own, made like the platform's (no auto-pipelining), so the floor pays what a route would.
const redis = new Redis(config.redisUrl as string, { maxRetriesPerRequest: 1 })
const key = `${config.redisPrefix}bench-floor`
await redis.set(key, 'x'.repeat(64))
const floor = Fastify()
floor.get('/floor', async () => ({ value: await redis.get(key) }))
await floor.listen({ host: config.host, port: 0 })
const address = floor.server.address()
// The floor's line first: whoever waits for the "HTTP API" line then has both.
process.stdout.write(`floor http://${config.host}:${typeof address === 'object' && address !== null ? address.port : 0}/floor\n`)
process.stdout.write(`  HTTP API             http://${config.host}:${platform.httpPort}\n`)

const stop = async (): Promise<void> => {
  await floor.close()
  redis.disconnect()
  await platform.close()
  process.exit(0)
}
process.once('SIGTERM', () => { stop().catch(() => process.exit(1)) })
process.once('SIGINT', () => { stop().catch(() => process.exit(1)) })
