// Typed errors with stable codes. HTTP maps them to statuses in one place (src/http/error-handler.ts).

export const errorCodes = {
  IOT_ERR_CONFIG: 500,
  IOT_ERR_LISTEN: 500,
  IOT_ERR_TLS: 500,
  /** A dependency lacks a private field or method the platform adapts (src/broker/aedes/internals.ts). */
  IOT_ERR_DEPENDENCY: 500,
  /** Role all's API thread (src/api-thread/) failed to start. */
  IOT_ERR_API_THREAD: 500,
  IOT_ERR_VALIDATION: 400,
  IOT_ERR_INVALID_JSON: 400,
  IOT_ERR_JSON_TOO_DEEP: 400,
  IOT_ERR_BAD_REQUEST: 400,
  IOT_ERR_REQUEST_TIMEOUT: 408,
  IOT_ERR_URI_TOO_LONG: 414,
  IOT_ERR_HEADERS_TOO_LARGE: 431,
  IOT_ERR_PAYLOAD_TOO_LARGE: 413,
  IOT_ERR_UNAUTHORIZED: 401,
  IOT_ERR_FORBIDDEN: 403,
  IOT_ERR_BAD_CREDENTIALS: 401,
  IOT_ERR_DEVICE_NOT_FOUND: 404,
  IOT_ERR_DEVICE_EXISTS: 409,
  IOT_ERR_DEVICE_DISABLED: 403,
  IOT_ERR_DEVICE_OFFLINE: 409,
  IOT_ERR_BATCH_EMPTY: 400,
  IOT_ERR_BATCH_TOO_LARGE: 400,
  IOT_ERR_BATCH_DUPLICATE_ID: 400,
  IOT_ERR_NOT_FOUND: 404,
  IOT_ERR_RATE_LIMITED: 429,
  IOT_ERR_LOCKED: 429,
  IOT_ERR_SELF_REGISTRATION_OFF: 403,
  IOT_ERR_UNAVAILABLE: 503,
  /** This process has as many requests of the kind in progress and waiting as it takes (src/shared/request-gate.ts). */
  IOT_ERR_BUSY: 503,
  IOT_ERR_SPOOL: 503,
  IOT_ERR_INTERNAL: 500,
  IOT_ERR_PUSH_TARGET: 400,
  IOT_ERR_PUSH_TTL: 400,
  IOT_ERR_PUSH_DATA_TOO_LARGE: 400,
  IOT_ERR_PUSH_LIVE_LIMIT: 429,
  IOT_ERR_PUSH_NOT_FOUND: 404
} as const

export type ErrorCode = keyof typeof errorCodes

export class PushlineError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly details: Readonly<Record<string, unknown>> | undefined

  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PushlineError'
    this.code = code
    this.statusCode = errorCodes[code]
    this.details = details
  }
}

export function isPushlineError (err: unknown, code?: ErrorCode): err is PushlineError {
  return err instanceof PushlineError && (code === undefined || err.code === code)
}

/**
 * True for the errors ioredis gives while Redis is unreachable or failing over (a demoted primary answers READONLY,
 * the Sentinels may not know the new one yet): callers answer "unavailable", not "internal error".
 */
export function isBackendUnavailable (err: unknown): boolean {
  if (!(err instanceof Error)) return false
  if (err.name === 'MaxRetriesPerRequestError') return true
  return /Connection is closed|Command timed out|ECONNREFUSED|Stream isn't writeable|enableOfflineQueue|^READONLY|^LOADING|^MASTERDOWN|All sentinels are unreachable|Failed to connect to sentinel/.test(err.message)
}
