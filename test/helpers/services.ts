import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'

// Where scripts/services.sh started the real Redis and Kafka (it writes .services/env; scripts/test.sh exports it).
// Integration tests fail loudly without them: they never fall back to fakes.

function required (name: string): string {
  const v = process.env[name]
  if (v === undefined || v === '') throw new Error(`${name} is not set: run integration tests through \`npm test\` (scripts/services.sh up starts Redis and Kafka)`)
  return v
}

export const redisUrl = (): string => required('PUSHLINE_TEST_REDIS_URL')
export const kafkaBrokers = (): string[] => required('PUSHLINE_TEST_KAFKA_BROKERS').split(',')

/** A unique key prefix per test, so tests share one Redis without seeing each other. */
export function uniquePrefix (): string {
  return `t-${randomUUID().slice(0, 12)}:`
}

export function connectRedis (t: TestContext): Redis {
  const r = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  t.after(() => r.quit())
  return r
}

/** Runs a scripts/services.sh subcommand such as kafka-stop or kafka-start. */
export async function services (command: string): Promise<void> {
  await promisify(execFile)('bash', [required('PUSHLINE_TEST_SERVICES'), command])
}
