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
    // 'forgets': the exit code tells the test what came back to the thread.
    if (message.type === 'answer' && message.id === 1) process.exit(message.error === undefined && message.value === null ? 0 : 3)
  })
  send({ type: 'started', httpPort: 4321 })
  if (config.nodeId === 'forgets') send({ type: 'ask', id: 1, what: 'forgetSession', deviceId: 'dev-7' })
  if (config.nodeId === 'dies-after-start') setImmediate(() => { throw new Error('stand-in crashed') })
}
