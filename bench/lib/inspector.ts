// A benchmark's view into a Node process started with --inspect=127.0.0.1:<port>: force a full garbage
// collection and read the heap as the process sees it (process.memoryUsage()), or write a heap snapshot, over
// the DevTools protocol. The platform needs no debug hook for it; only benchmark builds get the flag.
//
//   const inspector = await connectInspector(port)
//   await inspector.collectGarbage()
//   const mem = await inspector.memoryUsage()     // { rss, heapTotal, heapUsed, external, arrayBuffers }
//   inspector.close()

import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import WebSocket from 'ws'
import { waitUntil } from './proc.ts'

export interface MemoryUsage {
  readonly rss: number
  readonly heapTotal: number
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
}

export interface Inspector {
  /** A full, compacting collection (HeapProfiler.collectGarbage), twice so that weak references die too. */
  collectGarbage (): Promise<void>
  memoryUsage (): Promise<MemoryUsage>
  /** Writes a .heapsnapshot (loadable in Chrome DevTools, or summarized with bench/heap-summary.ts). */
  heapSnapshot (path: string): Promise<void>
  close (): void
}

interface Reply { id?: number, method?: string, params?: { chunk?: string }, result?: { result?: { value?: unknown } }, error?: { message: string } }

/** Connects to the inspector on 127.0.0.1:port, waiting up to `timeoutMs` for it to listen. */
export async function connectInspector (port: number, timeoutMs = 10_000): Promise<Inspector> {
  let url: string | undefined
  await waitUntil(async () => {
    try {
      const list = await (await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(1000) })).json() as Array<{ webSocketDebuggerUrl?: string }>
      url = list[0]?.webSocketDebuggerUrl
    } catch { /* not listening yet */ }
    return url !== undefined
  }, timeoutMs, 100)
  if (url === undefined) throw new Error(`no inspector on 127.0.0.1:${port} within ${timeoutMs} ms`)
  const ws = new WebSocket(url, { maxPayload: 1024 * 1024 * 1024 })
  await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })

  let nextId = 1
  const pending = new Map<number, { resolve: (r: Reply) => void, reject: (e: Error) => void }>()
  let onChunk: ((chunk: string) => void) | undefined
  ws.on('message', (data: Buffer) => {
    const reply = JSON.parse(data.toString('utf8')) as Reply
    if (reply.method === 'HeapProfiler.addHeapSnapshotChunk') return onChunk?.(reply.params?.chunk ?? '')
    if (reply.id === undefined) return
    const p = pending.get(reply.id)
    pending.delete(reply.id)
    if (reply.error !== undefined) p?.reject(new Error(reply.error.message))
    else p?.resolve(reply)
  })
  ws.on('close', () => {
    for (const p of pending.values()) p.reject(new Error('inspector connection closed'))
    pending.clear()
  })

  const call = (method: string, params: Record<string, unknown> = {}, timeout = 120_000): Promise<Reply> => new Promise((resolve, reject) => {
    const id = nextId++
    const timer = setTimeout(() => { pending.delete(id); reject(new Error(`inspector: no reply to ${method} within ${timeout} ms`)) }, timeout)
    pending.set(id, { resolve: (r) => { clearTimeout(timer); resolve(r) }, reject: (e) => { clearTimeout(timer); reject(e) } })
    ws.send(JSON.stringify({ id, method, params }))
  })

  return {
    async collectGarbage () {
      await call('HeapProfiler.collectGarbage')
      await call('HeapProfiler.collectGarbage')
    },
    async memoryUsage () {
      const reply = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })
      return JSON.parse(String(reply.result?.result?.value)) as MemoryUsage
    },
    async heapSnapshot (path) {
      await mkdir(dirname(path), { recursive: true })
      const out = createWriteStream(path)
      onChunk = (chunk) => { out.write(chunk) }
      try {
        await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 600_000)
      } finally {
        onChunk = undefined
        await new Promise<void>((resolve) => { out.end(() => resolve()) })
      }
    },
    close () { ws.close() }
  }
}
