import { hash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import type { RandomPool } from '../shared/random-pool.ts'

// Device secrets are 256 random bits the platform generates, so they cannot be guessed and a slow password hash
// buys nothing: they are stored as "sha256$<digest b64url>", computed on the event loop in about a microsecond.
// Records written before that hold "scrypt$<log2N>$<salt b64url>$<hash b64url>"; they still verify (on the libuv
// pool, as scrypt must) and the caller replaces them with the digest after the first successful check.

const DIGEST_SCHEME = 'sha256'
const KEY_LENGTH = 32
const MIN_COST = 10
const MAX_COST = 20
const R = 8
const P = 1

function digest (secret: string): Buffer {
  return hash('sha256', secret, 'buffer')
}

/** The stored form of a secret. */
export function hashSecret (secret: string): string {
  return `${DIGEST_SCHEME}$${digest(secret).toString('base64url')}`
}

/** True when `stored` is in an older form that should be replaced by hashSecret() after a successful check. */
export function isLegacySecretHash (stored: string): boolean {
  return !stored.startsWith(`${DIGEST_SCHEME}$`)
}

// A well-formed record no secret matches: checks of unknown device ids run against it, so that an unknown id and
// a known id with a wrong secret do the same work.
const NO_DEVICE = hashSecret(randomBytes(32).toString('base64url'))

/** The record to check a secret against when the device does not exist. */
export function unknownDeviceSecretHash (): string {
  return NO_DEVICE
}

function derive (secret: string, salt: Buffer, log2N: number): Promise<Buffer> {
  const N = 2 ** log2N
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, KEY_LENGTH, { N, r: R, p: P, maxmem: 256 * N * R }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

function equal (actual: Buffer, expected: Buffer): boolean {
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}

async function verifyScrypt (secret: string, cost: string | undefined, salt: string | undefined, hash: string | undefined): Promise<boolean> {
  if (cost === undefined || salt === undefined || hash === undefined) return false
  // A corrupt cost must fail the check, not throw (and not ask scrypt for gigabytes).
  if (!/^\d{1,2}$/.test(cost) || Number(cost) < MIN_COST || Number(cost) > MAX_COST) return false
  return equal(await derive(secret, Buffer.from(salt, 'base64url'), Number(cost)), Buffer.from(hash, 'base64url'))
}

/** Compares in constant time; a malformed record never matches. */
export async function verifySecret (secret: string, stored: string): Promise<boolean> {
  const [scheme, ...rest] = stored.split('$')
  if (scheme === DIGEST_SCHEME && rest.length === 1) return equal(digest(secret), Buffer.from(rest[0] as string, 'base64url'))
  if (scheme === 'scrypt' && rest.length === 3) return await verifyScrypt(secret, rest[0], rest[1], rest[2])
  return false
}

/** The scrypt form older releases wrote; kept so tests can write such records and check their upgrade. */
export async function legacyScryptHash (secret: string, log2N: number): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(secret, salt, log2N)
  return `scrypt$${log2N}$${salt.toString('base64url')}$${key.toString('base64url')}`
}

/** A new device secret: 256 random bits. */
export function generateSecret (random?: RandomPool): string {
  return random?.base64url(32) ?? randomBytes(32).toString('base64url')
}
