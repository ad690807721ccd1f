import pino, { type DestinationStream, type Logger } from 'pino'

export function createLogger (opts: { level: string, nodeId: string, destination?: DestinationStream }): Logger {
  return pino({
    level: opts.level,
    base: { nodeId: opts.nodeId },
    // Secrets and tokens are never logged, even if a future log line passes a whole request.
    redact: { paths: ['req.headers.authorization', 'req.headers["x-provisioning-key"]', '*.secret', '*.token', '*.password', 'secret', 'token', 'password'], censor: '[redacted]' }
  }, opts.destination)
}
