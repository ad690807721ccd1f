// The least a Node.js process does per authenticated MQTT connect, run by bench/connect-rate.ts as target
// `node-floor`: parse the CONNECT, look the token up in Redis with the platform's own token store and Redis
// connection (one GET; writes of an event loop turn coalesced, as in the platform), check that it names the client id, write the CONNACK. No sessions, presence,
// subscriptions, metrics or logs. Its rate is the ceiling of any broker written for Node on this machine, which
// tells how much of the gap to Mosquitto is Node itself and how much is the broker's per-connect work.
// Usage: node --import tsx bench/lib/floor-broker.ts <port> <redis url> <key prefix>

import { createServer } from 'node:net'
import { parser as mqttParser, type Packet } from 'mqtt-packet'
import pino from 'pino'
import { hashToken } from '../../src/auth/device-token.ts'
import { createRedis } from '../../src/shared/redis.ts'
import { createRedisTokenStore } from '../../src/stores/redis-token-store.ts'

const CONNACK_ACCEPTED = Buffer.from([0x20, 0x02, 0x00, 0x00])
const CONNACK_BAD_CREDENTIALS = Buffer.from([0x20, 0x02, 0x00, 0x04])

function main (): void {
  const [port, redisUrl, prefix] = process.argv.slice(2)
  if (port === undefined || redisUrl === undefined || prefix === undefined) throw new Error('usage: floor-broker.ts <port> <redis url> <key prefix>')
  const redis = createRedis({ kind: 'url', url: redisUrl, password: undefined, commandTimeoutMs: 0 }, pino({ level: 'warn' }), 'floor-broker')
  const tokens = createRedisTokenStore({ redis, prefix })

  const server = createServer((socket) => {
    socket.setNoDelay(true)
    const parser = mqttParser()
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    socket.on('error', () => { socket.destroy() })
    parser.on('error', () => { socket.destroy() })
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd !== 'connect') return
      const token = packet.password?.toString('utf8')
      if (token === undefined || packet.username !== packet.clientId) {
        socket.end(CONNACK_BAD_CREDENTIALS)
        return
      }
      tokens.get(hashToken(token), Date.now()).then((record) => {
        if (record?.deviceId === packet.clientId) socket.write(CONNACK_ACCEPTED)
        else socket.end(CONNACK_BAD_CREDENTIALS)
      }, () => { socket.destroy() })
    })
  })
  server.listen(Number(port), '127.0.0.1')
  process.once('SIGTERM', () => {
    server.close()
    redis.disconnect()
    process.exit(0)
  })
}

main()
