import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

// Device secrets are stored as scrypt hashes: "scrypt$<log2N>$<salt b64url>$<hash b64url>".
// The cost is stored with each hash so it can be raised later without breaking existing devices.

const KEY_LENGTH = 32
const MIN_COST = 10
const MAX_COST = 20
const R = 8
const P = 1

function derive (secret: string, salt: Buffer, log2N: number): Promise<Buffer> {
  const N = 2 ** log2N
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, KEY_LENGTH, { N, r: R, p: P, maxmem: 256 * N * R }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

export async function hashSecret (secret: string, log2N: number): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(secret, salt, log2N)
  return `scrypt$${log2N}$${salt.toString('base64url')}$${key.toString('base64url')}`
}

export async function verifySecret (secret: string, stored: string): Promise<boolean> {
  const [scheme, cost, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || cost === undefined || salt === undefined || hash === undefined) return false
  // A corrupt cost must fail the check, not throw (and not ask scrypt for gigabytes).
  if (!/^\d{1,2}$/.test(cost) || Number(cost) < MIN_COST || Number(cost) > MAX_COST) return false
  const expected = Buffer.from(hash, 'base64url')
  const actual = await derive(secret, Buffer.from(salt, 'base64url'), Number(cost))
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}

/** A new device secret: 256 random bits. */
export function generateSecret (): string {
  return randomBytes(32).toString('base64url')
}
