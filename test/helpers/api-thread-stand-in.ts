import { parentPort, workerData } from 'node:worker_threads'
import type { ApiThreadData, FromApiThread, ToApiThread } from '../../src/api-thread/thread-messages.ts'

// A stand-in for src/api-thread/api-thread-main.ts (test/unit/api-thread.test.ts): what it does is picked by the
// node id of the configuration it is handed.

const port = parentPort
const { config } = workerData as ApiThreadData
if (port !== null) {
  const send = (message: FromApiThread): void => { port.postMessage(message) }
  if (config.nodeId === 'fails-to-start') {
    send({ type: 'start_failed', message: 'Redis unreachable' })
    process.exit(1)
  }
  port.on('message', (message: ToApiThread) => {
    if (message.type === 'close') process.exit(0)
  })
  send({ type: 'started', httpPort: 4321 })
  if (config.nodeId === 'dies-after-start') setImmediate(() => { throw new Error('stand-in crashed') })
}
