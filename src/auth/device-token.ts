import { createHash, randomBytes } from 'node:crypto'

/** A new device token: 256 random bits, URL-safe. */
export function generateToken (): string {
  return randomBytes(32).toString('base64url')
}

/** The key a token is stored under. Tokens are high-entropy, so a fast hash is enough here. */
export function hashToken (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}
