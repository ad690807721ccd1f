// The platform's HTTP API as the simulator uses it: the device side (tokens, self-registration, pulls) and the
// operator side (devices, pushes, receipts, nodes). Every call has a deadline; failures are SIM_ERR_HTTP with
// the status, so callers can tell a refused token (401/403) from an overloaded registry (429/503).

import { Pool, type Dispatcher } from 'undici'
import { SimError } from './errors.ts'

export interface BrokerAddress {
  readonly nodeId: string
  readonly mqtt: string
}

export interface IssuedToken {
  readonly token: string
  readonly expiresAt: number
  readonly broker: BrokerAddress
}

export interface PulledMessage {
  readonly id: number
  readonly pushId: string
  readonly sentAt: number
  readonly data: unknown
}

export interface PushStatus {
  readonly pushId: string
  readonly progress?: { processed: number, total: number, done: boolean }
  readonly counts: { queued: number, sent: number, delivered: number, acked: number, expired: number, failed: number }
}

export interface NewDevice {
  readonly id: string
  readonly groups?: readonly string[]
  readonly metadata?: Record<string, unknown>
}

export interface BatchResult {
  readonly created: Array<{ id: string, secret: string, groups: string[] }>
  readonly failed: Array<{ id: string, error: string }>
}

/** The most devices one POST /v1/admin/devices/batch takes. */
export const MAX_BATCH = 10_000

export interface HttpApi {
  createDeviceAsAdmin (id: string, groups: readonly string[]): Promise<string>
  /** POST /v1/admin/devices/batch: at most MAX_BATCH devices with distinct ids. */
  createDevicesAsAdmin (devices: readonly NewDevice[]): Promise<BatchResult>
  rotateSecret (id: string): Promise<string>
  selfRegister (id: string, groups: readonly string[]): Promise<string>
  token (id: string, secret: string): Promise<IssuedToken>
  pull (token: string, after: number, limit: number): Promise<PulledMessage[]>
  push (body: Record<string, unknown>): Promise<string>
  pushStatus (pushId: string): Promise<PushStatus>
  nodes (): Promise<Array<{ nodeId: string }>>
}

const TIMEOUT_MS = 15_000
/** A batch of 10,000 is one request of a few MB, written in one go on the platform's side. */
const BATCH_TIMEOUT_MS = 120_000

export function createHttpApi (baseUrl: string, keys: { adminKey?: string | undefined, provisioningKey?: string | undefined }): HttpApi {
  const base = new URL(baseUrl)
  // One pool of kept-alive connections per API client, with no stream per response: a worker asks for thousands
  // of tokens, and node:http's client (a ClientRequest, an IncomingMessage and agent bookkeeping per call) cost it
  // more CPU than connecting the devices did. The pool bounds nothing itself; the callers' Limiter does.
  const pool = new Pool(base.origin)
  const basePath = base.pathname.replace(/\/$/, '')
  function call (method: Dispatcher.HttpMethod, path: string, body: unknown, headers: Record<string, string>, timeoutMs = TIMEOUT_MS): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON bodies are checked by the callers
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const fail = (message: string, status: number): void => { reject(new SimError('SIM_ERR_HTTP', `${method} ${path}: ${message}`, status)) }
      let status = 0
      const chunks: Buffer[] = []
      pool.dispatch({
        method,
        path: basePath + path,
        headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: payload,
        // No answer, or a pause within one, this long fails the call.
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs
      }, {
        // Its presence selects undici's handler interface of onResponse* callbacks.
        onRequestStart () {},
        onResponseStart (_controller, statusCode) { status = statusCode },
        onResponseData (_controller, chunk) { chunks.push(chunk) },
        onResponseEnd () {
          // A token answer is one chunk; a batch answer (a few MB) is many, decoded together so no character splits.
          const text = (chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks)).toString('utf8')
          if (status < 200 || status > 299) return fail(`${status} ${text.slice(0, 200)}`, status)
          try {
            resolve(text === '' ? undefined : JSON.parse(text))
          } catch (err) {
            fail(`bad JSON: ${(err as Error).message}`, status)
          }
        },
        onResponseError (_controller, err) { fail(err.message, 0) }
      })
    })
  }
  const admin = (): Record<string, string> => {
    if (keys.adminKey === undefined) throw new SimError('SIM_ERR_USAGE', 'this needs --admin-key')
    return { authorization: `Bearer ${keys.adminKey}` }
  }
  const enc = encodeURIComponent
  return {
    async createDeviceAsAdmin (id, groups) {
      return (await call('POST', '/v1/admin/devices', { id, groups }, admin())).secret
    },
    async createDevicesAsAdmin (devices) {
      return await call('POST', '/v1/admin/devices/batch', { devices }, admin(), BATCH_TIMEOUT_MS)
    },
    async rotateSecret (id) {
      return (await call('POST', `/v1/admin/devices/${enc(id)}/secret`, undefined, admin())).secret
    },
    async selfRegister (id, groups) {
      return (await call('POST', '/v1/devices', { id, groups }, { 'x-provisioning-key': keys.provisioningKey ?? '' })).secret
    },
    async token (id, secret) {
      return await call('POST', `/v1/devices/${enc(id)}/token`, { secret }, {})
    },
    async pull (token, after, limit) {
      return (await call('GET', `/v1/devices/me/messages?after=${after}&limit=${limit}`, undefined, { authorization: `Bearer ${token}` })).messages
    },
    async push (body) {
      return (await call('POST', '/v1/admin/push', body, admin())).pushId
    },
    async pushStatus (pushId) {
      return await call('GET', `/v1/admin/push/${enc(pushId)}?limit=1`, undefined, admin())
    },
    async nodes () {
      return (await call('GET', '/v1/admin/nodes', undefined, admin())).nodes
    }
  }
}
