// Typed errors of the simulator, with stable codes: a usage error exits 2, a failed run 1.

export type SimErrorCode =
  | 'SIM_ERR_USAGE'
  | 'SIM_ERR_SCENARIO'
  | 'SIM_ERR_HTTP'
  | 'SIM_ERR_WORKER'
  | 'SIM_ERR_CREDENTIALS'

export class SimError extends Error {
  readonly code: SimErrorCode
  /** HTTP status for SIM_ERR_HTTP, undefined otherwise. */
  readonly status: number | undefined

  constructor (code: SimErrorCode, message: string, status?: number) {
    super(message)
    this.name = 'SimError'
    this.code = code
    this.status = status
  }
}
