import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import type { Config } from '../config/load-config.ts'
import type { ReadinessReport } from '../http/routes/health.ts'
import type { MetricsSnapshot } from '../metrics/merged-metrics.ts'
import { PushlineError } from '../shared/errors.ts'
import type { ApiThreadData, Asked, FromApiThread, ToApiThread } from './thread-messages.ts'

// Role all with Redis serves its HTTP API from a worker thread (src/api-thread/api-thread-main.ts) at a lower CPU
// priority than the broker's thread (docs/design.md, "The API thread of role all"). The thread runs the API exactly
// as a process of role api does; the two threads share their state through Redis as two processes would.

export interface ApiThreadOptions {
  /** The process's configuration (role all). */
  readonly config: Config
  readonly logger: Logger
  /** The broker thread's own report and samples, which the API's port serves for the whole process. */
  readonly readiness: () => Promise<ReadinessReport>
  readonly metrics: () => Promise<MetricsSnapshot>
  /** Drops a device's local session: the API thread asks before it answers a delete of that device. */
  readonly forgetSession: (deviceId: string) => Promise<void>
  /** Called once if the thread ends without having been asked to: the process must not go on without its API. */
  readonly onDied: (reason: string) => void
  /** The thread's module; tests give a stand-in. Default: api-thread-main beside this module. */
  readonly entry?: URL
}

export interface ApiThread {
  readonly httpPort: number
  /** Asks the thread to close its parts and waits until it has ended. */
  close (): Promise<void>
}

/** The API's configuration: role api, with a data directory of its own for its receipts spool. */
export function apiThreadConfig (config: Config): Config {
  return { ...config, role: 'api', apiThread: false, dataDir: join(config.dataDir, 'api-thread') }
}

export async function startApiThread (opts: ApiThreadOptions): Promise<ApiThread> {
  const { logger } = opts
  const data: ApiThreadData = { config: apiThreadConfig(opts.config), nice: opts.config.apiThreadNice }
  const worker = openWorker(opts.entry ?? new URL(`./api-thread-main.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url), data)
  const send = (message: ToApiThread): void => { worker.postMessage(message) }
  const value = async (what: keyof Asked, deviceId: string | undefined): Promise<Asked[keyof Asked]> => {
    switch (what) {
      case 'readiness': return await opts.readiness()
      case 'metrics': return await opts.metrics()
      case 'forgetSession':
        if (deviceId === undefined) throw new Error('forgetSession names no device')
        await opts.forgetSession(deviceId)
        return null
    }
  }
  const answer = async (id: number, what: keyof Asked, deviceId: string | undefined): Promise<void> => {
    try {
      send({ type: 'answer', id, value: await value(what, deviceId) })
    } catch (err) {
      send({ type: 'answer', id, error: (err as Error).message })
    }
  }
  let running = false
  let closing = false
  let started: ((httpPort: number) => void) | undefined
  let failed: ((err: Error) => void) | undefined
  const httpPort = new Promise<number>((resolve, reject) => { started = resolve; failed = reject })
  let lastError: string | undefined
  worker.on('message', (message: FromApiThread) => {
    if (message.type === 'ask') answer(message.id, message.what, message.deviceId).catch((err: Error) => { logger.error({ event: 'api_thread_answer_failed', err: err.message }, 'could not answer the API thread') })
    else if (message.type === 'start_failed') lastError = message.message
    else {
      running = true
      started?.(message.httpPort)
    }
  })
  worker.on('error', (err) => {
    lastError = err.message
    logger.error({ event: 'api_thread_error', err: err.message, stack: err.stack }, 'uncaught error in the API thread')
  })
  // Not events.once: it would reject on the thread's 'error' event, which precedes the 'exit' of a crash.
  const exited = new Promise<void>((resolve) => worker.once('exit', () => { resolve() }))
  worker.on('exit', (code: number) => {
    const reason = `the API thread ended with code ${code}${lastError === undefined ? '' : `: ${lastError}`}`
    if (!running) {
      failed?.(new PushlineError('IOT_ERR_API_THREAD', reason))
      return
    }
    if (closing) return
    logger.fatal({ event: 'api_thread_died', exitCode: code, err: lastError }, 'the API thread ended: stopping the process')
    opts.onDied(reason)
  })
  return {
    httpPort: await httpPort,
    async close () {
      closing = true
      send({ type: 'close' })
      await exited
    }
  }
}

function openWorker (entry: URL, data: ApiThreadData): Worker {
  const options = { workerData: data, name: 'pushline-api' }
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options)
  // From source (`node --import tsx`, tests and `npm run dev`), Node 20 does not apply the tsx loader that the
  // process registered to a worker's modules: the worker registers it itself before loading its entry.
  const tsx = import.meta.resolve('tsx/esm/api')
  return new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}) })`, { ...options, eval: true })
}
