import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString, LogFn } from 'pino'

// Fastify gives every request a child logger that carries its trace id. pino makes a child at once: it serializes
// the bindings, through the redaction paths, whether or not the request ever logs; at the usual levels a request
// that goes well logs nothing. The request's logger here makes that child on its first enabled log line (or any
// other use), so the lines it writes are the same and a quiet request pays for no child.

type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** What the parent must offer besides Fastify's logger: pino's level check. */
type LevelCheckingLogger = FastifyBaseLogger & { isLevelEnabled: (level: string) => boolean }

function checksLevels (logger: FastifyBaseLogger): logger is LevelCheckingLogger {
  return typeof (logger as Partial<LevelCheckingLogger>).isLevelEnabled === 'function'
}

class DeferredChildLogger implements FastifyBaseLogger {
  readonly #parent: LevelCheckingLogger
  readonly #bindings: Bindings
  #child: FastifyBaseLogger | undefined
  readonly fatal = this.#method('fatal')
  readonly error = this.#method('error')
  readonly warn = this.#method('warn')
  readonly info = this.#method('info')
  readonly debug = this.#method('debug')
  readonly trace = this.#method('trace')
  readonly silent: LogFn = () => {}

  constructor (parent: LevelCheckingLogger, bindings: Bindings) {
    this.#parent = parent
    this.#bindings = bindings
  }

  #real (): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings)
    return this.#child
  }

  #method (level: LogLevel): LogFn {
    return ((...args: unknown[]) => {
      if (this.#child === undefined && !this.#parent.isLevelEnabled(level)) return
      const real = this.#real()
      Reflect.apply(real[level], real, args)
    }) as LogFn
  }

  get level (): LevelWithSilentOrString {
    return this.#child?.level ?? this.#parent.level
  }

  set level (level: LevelWithSilentOrString) {
    this.#real().level = level
  }

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options)
  }
}

/**
 * Fastify's `childLoggerFactory`: request loggers whose pino child is made on first use. A route with a log level or
 * serializers of its own, or a parent without pino's level check, gets its child at once, as by default.
 */
export function deferredRequestLoggers (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  if (options.level !== undefined || options.serializers !== undefined || !checksLevels(logger)) return logger.child(bindings, options)
  return new DeferredChildLogger(logger, bindings)
}
