import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { startPlatform, type Platform } from '../main.ts'
import { isPushlineError } from '../shared/errors.ts'
import { createLogger } from '../shared/logger.ts'
import { linkBrokerThread } from './broker-thread-link.ts'
import type { ApiThreadData, FromApiThread, ToApiThread } from './thread-messages.ts'
import { lowerThreadPriority } from './thread-priority.ts'

// The entry of role all's API thread (src/api-thread/start-api-thread.ts starts it): lowers its own priority,
// then starts the platform in role api through the composition root, with the broker thread's readiness and
// metrics joined to its own and the broker thread dropping the session of a device it deletes.

async function runApiThread (port: MessagePort, data: ApiThreadData): Promise<void> {
  const { config } = data
  const logger = createLogger({ level: config.logLevel, nodeId: config.nodeId }).child({ thread: 'api' })
  const send = (message: FromApiThread): void => { port.postMessage(message) }
  try {
    const nice = lowerThreadPriority(data.nice)
    logger.info({ event: 'api_thread_priority', nice }, nice === undefined ? 'the API thread keeps the process\'s priority (not Linux)' : `the API thread runs at nice ${nice}`)
  } catch (err) {
    logger.warn({ event: 'api_thread_priority_failed', err: (err as Error).message }, 'could not lower the API thread\'s priority: it competes with the broker as an equal')
  }
  const broker = linkBrokerThread(port)
  let platform: Platform | undefined
  const close = async (): Promise<void> => {
    // Asked while still starting (the process's start failed in the other thread): ending the thread ends what
    // it has opened so far.
    if (platform !== undefined) await platform.close()
    logger.info({ event: 'api_thread_closed' }, 'the API thread has closed its parts')
    process.exit(0)
  }
  port.on('message', (message: ToApiThread) => {
    if (message.type === 'answer') broker.answered(message)
    else close().catch((err: Error) => { logger.error({ event: 'close_failed', err: err.message }, 'the API thread failed to close'); process.exit(1) })
  })
  try {
    platform = await startPlatform(config, logger, { brokerThread: broker })
  } catch (err) {
    const message = isPushlineError(err) ? err.message : (err as Error).stack ?? String(err)
    logger.fatal({ event: 'start_failed', err: (err as Error).message }, 'the API thread failed to start')
    send({ type: 'start_failed', message })
    process.exit(1)
  }
  send({ type: 'started', httpPort: platform.httpPort })
}

if (parentPort !== null) await runApiThread(parentPort, workerData as ApiThreadData)
