// What a simulated device needs from an MQTT connection, whichever engine provides it.

export interface ConnectParams {
  /** mqtt://host:port, as the registry handed it out. */
  readonly url: string
  readonly clientId: string
  readonly username: string
  readonly password: string
  readonly keepalive: number
  readonly clean: boolean
  /** Local address to bind the socket to (spreads connections over 127.0.0.x). */
  readonly localAddress: string | undefined
  /** Local port to bind to with localAddress (source-endpoints.ts; the light engine only, MQTT.js lets the kernel
   *  choose); undefined: the kernel chooses. */
  readonly localPort: number | undefined
  readonly timeoutMs: number
}

export interface DeviceConnection {
  /** Resolves at the PUBACK for QoS 1, once written for QoS 0; rejects when the connection ends first. */
  publish (topic: string, payload: Buffer, qos: 0 | 1): Promise<void>
  /** Granted QoS per filter (128: refused). */
  subscribe (filters: readonly string[], qos: 0 | 1): Promise<number[]>
  onMessage (handler: (topic: string, payload: Buffer) => void): void
  /** Called once when the connection ends for any reason (not after end()). */
  onClose (handler: (reason: string) => void): void
  /** Closes the socket at once. */
  end (): void
}

/** Why a connect failed: `refused` carries the CONNACK return code; `network` an errno such as ECONNREFUSED. */
export class ConnectError extends Error {
  readonly kind: 'refused' | 'network' | 'timeout'
  readonly returnCode: number | undefined

  constructor (kind: 'refused' | 'network' | 'timeout', message: string, returnCode?: number) {
    super(message)
    this.name = 'ConnectError'
    this.kind = kind
    this.returnCode = returnCode
  }
}

export type Connector = (params: ConnectParams) => Promise<DeviceConnection>

export function hostPort (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port === '' ? 1883 : u.port) }
}
