import { hash, randomBytes } from 'node:crypto'
import type { RandomPool } from '../shared/random-pool.ts'

/** A new device token: 256 random bits, URL-safe. */
export function generateToken (random?: RandomPool): string {
  return random?.base64url(32) ?? randomBytes(32).toString('base64url')
}

/** The key a token is stored under. Tokens are high-entropy, so a fast hash is enough here. */
export function hashToken (token: string): string {
  return hash('sha256', token, 'base64url')
}
