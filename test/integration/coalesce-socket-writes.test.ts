import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { coalesceWrites } from '../../src/shared/ioredis/coalesce-socket-writes.ts'
import { waitUntil } from '../helpers/eventually.ts'

/** A loopback connection and everything its peer receives. */
async function pair (t: TestContext): Promise<{ socket: Socket, received: () => string }> {
  let data = ''
  const server = createServer((peer) => { peer.setEncoding('utf8'); peer.on('data', (d: string) => { data += d }) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
  t.after(() => { socket.destroy(); server.close() })
  await once(socket, 'connect')
  return { socket, received: () => data }
}

/** Counts the socket's trips to the kernel: one _write or _writev call each. */
function countFlushes (socket: Socket): () => number {
  let n = 0
  const s = socket as unknown as { _write: (...a: unknown[]) => void, _writev: (...a: unknown[]) => void }
  const w = s._write.bind(socket)
  const wv = s._writev.bind(socket)
  s._write = (...a) => { n++; w(...a) }
  s._writev = (...a) => { n++; wv(...a) }
  return () => n
}

/** Twenty writes, each in its own tick of one event loop turn, as replies of different callbacks would make them. */
async function writeOverTicks (socket: Socket): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve) => process.nextTick(resolve))
    socket.write(`w${i};`)
  }
}

const expected = Array.from({ length: 20 }, (_, i) => `w${i};`).join('')

test('the first write of a turn leaves at once, and the later ones of that turn in one flush, in order', { timeout: 120_000 }, async (t) => {
  const { socket, received } = await pair(t)
  coalesceWrites(socket)
  coalesceWrites(socket)
  const flushes = countFlushes(socket)
  await writeOverTicks(socket)
  assert.equal(flushes(), 1, 'only the first is out; the rest wait for the turn\'s I/O callbacks')
  await waitUntil('the writes', () => received().length === expected.length)
  assert.equal(received(), expected)
  assert.equal(flushes(), 2)

  // The next turn starts afresh: its one write is not held.
  await new Promise((resolve) => setImmediate(resolve))
  socket.write('next;')
  assert.equal(flushes(), 3)
  await waitUntil('the writes', () => received().endsWith('next;'))
})

test('without it, the same writes take one flush each', { timeout: 120_000 }, async (t) => {
  const { socket, received } = await pair(t)
  const flushes = countFlushes(socket)
  await writeOverTicks(socket)
  await waitUntil('the writes', () => received().length === expected.length)
  assert.equal(received(), expected)
  assert.equal(flushes(), 20)
})

test('ending a socket with held writes sends them first', { timeout: 120_000 }, async (t) => {
  const { socket, received } = await pair(t)
  coalesceWrites(socket)
  socket.write('a;')
  socket.end('b;')
  await waitUntil('the writes', () => received() === 'a;b;')
})
