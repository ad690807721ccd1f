import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecret, hashSecret, isLegacySecretHash, legacyScryptHash, unknownDeviceSecretHash, verifySecret } from '../../src/auth/secret-hash.ts'
import { generateToken, hashToken } from '../../src/auth/device-token.ts'
import { matchesAnyKey } from '../../src/auth/constant-time.ts'

const COST = 10

test('a secret is stored as its SHA-256 digest and verifies only with the same secret', { timeout: 120_000 }, async () => {
  const secret = generateSecret()
  const stored = hashSecret(secret)
  assert.match(stored, /^sha256\$[A-Za-z0-9_-]{43}$/)
  assert.equal(stored.includes(secret), false)
  assert.equal(hashSecret(secret), stored, 'the digest of a 256-bit random secret needs no salt')
  assert.equal(isLegacySecretHash(stored), false)
  assert.equal(await verifySecret(secret, stored), true)
  for (const wrong of [secret + 'x', secret.slice(0, -1), '', 'pässwörd-🔑']) assert.equal(await verifySecret(wrong, stored), false, wrong)
})

test('a malformed digest record or a truncated digest never verifies', { timeout: 120_000 }, async () => {
  const stored = hashSecret('s3cret')
  for (const bad of ['sha256$', 'sha256', stored.slice(0, -4), `${stored}$x`, 'SHA256' + stored.slice(6)]) {
    assert.equal(await verifySecret('s3cret', bad), false, bad)
  }
})

test('legacy scrypt records are recognised for upgrade; the unknown-device record matches no secret', { timeout: 120_000 }, async () => {
  assert.equal(isLegacySecretHash(await legacyScryptHash('s3cret', COST)), true)
  assert.equal(isLegacySecretHash(unknownDeviceSecretHash()), false)
  for (const s of ['', 's3cret', generateSecret()]) assert.equal(await verifySecret(s, unknownDeviceSecretHash()), false)
})

test('a legacy scrypt hash verifies with the right secret and not with a wrong one', { timeout: 120_000 }, async () => {
  const secret = generateSecret()
  const stored = await legacyScryptHash(secret, COST)
  assert.equal(await verifySecret(secret, stored), true)
  assert.equal(await verifySecret(secret + 'x', stored), false)
  assert.equal(await verifySecret(secret.slice(0, -1), stored), false)
  assert.equal(await verifySecret('', stored), false)
  assert.equal(await verifySecret(secret.toUpperCase() === secret ? secret.toLowerCase() : secret.toUpperCase(), stored), false)
})

test('secrets with unicode and empty secrets round-trip through a legacy scrypt hash', { timeout: 120_000 }, async () => {
  for (const secret of ['', 'pässwörd-🔑', 'a$b$c']) {
    const stored = await legacyScryptHash(secret, COST)
    assert.equal(await verifySecret(secret, stored), true, JSON.stringify(secret))
    assert.equal(await verifySecret(secret + ' ', stored), false, JSON.stringify(secret))
  }
})

test('two legacy scrypt hashes of the same secret differ because each has its own salt', { timeout: 120_000 }, async () => {
  const a = await legacyScryptHash('the same secret', COST)
  const b = await legacyScryptHash('the same secret', COST)
  assert.notEqual(a, b)
  assert.notEqual(a.split('$')[2], b.split('$')[2], 'salts differ')
  assert.equal(await verifySecret('the same secret', a), true)
  assert.equal(await verifySecret('the same secret', b), true)
})

test('a legacy scrypt hash records the scheme and the cost it was made with', { timeout: 120_000 }, async () => {
  const stored = await legacyScryptHash('s3cret', COST)
  const parts = stored.split('$')
  assert.equal(parts.length, 4)
  assert.equal(parts[0], 'scrypt')
  assert.equal(parts[1], String(COST))
  assert.equal(Buffer.from(parts[2] as string, 'base64url').length, 16, 'salt of 128 bits')
  assert.equal(Buffer.from(parts[3] as string, 'base64url').length, 32, 'key of 256 bits')

  const higher = await legacyScryptHash('s3cret', COST + 1)
  assert.equal(higher.split('$')[1], String(COST + 1))
  // Verification uses the cost stored with each hash, so hashes of different costs both verify.
  assert.equal(await verifySecret('s3cret', higher), true)
  assert.equal(await verifySecret('s3cret', stored), true)
})

test('a legacy scrypt hash whose cost was altered no longer verifies', { timeout: 120_000 }, async () => {
  const stored = await legacyScryptHash('s3cret', COST)
  const [scheme, , salt, key] = stored.split('$')
  assert.equal(await verifySecret('s3cret', [scheme, String(COST + 1), salt, key].join('$')), false)
})

test('a malformed stored hash verifies false', { timeout: 120_000 }, async () => {
  const good = await legacyScryptHash('s3cret', COST)
  const [, cost, salt, key] = good.split('$')
  for (const stored of [
    '',
    'garbage',
    'scrypt',
    `scrypt$${cost}`,
    `scrypt$${cost}$${salt}`,
    `bcrypt$${cost}$${salt}$${key}`,
    `scrypt$${cost}$${salt}$`,
    `scrypt$${cost}$${salt}$${(key as string).slice(0, 10)}`
  ]) {
    assert.equal(await verifySecret('s3cret', stored), false, JSON.stringify(stored))
  }
})

test('a legacy scrypt hash with an unusable cost verifies false instead of throwing', { timeout: 120_000 }, async () => {
  const good = await legacyScryptHash('s3cret', COST)
  const [, , salt, key] = good.split('$')
  for (const cost of ['abc', '', '1', '99', '-3']) {
    assert.equal(await verifySecret('s3cret', `scrypt$${cost}$${salt}$${key}`), false, `cost ${JSON.stringify(cost)}`)
  }
})

test('generated secrets carry at least 256 bits and do not repeat', () => {
  const seen = new Set<string>()
  for (let i = 0; i < 1000; i++) {
    const s = generateSecret()
    assert.match(s, /^[A-Za-z0-9_-]{43,}$/)
    assert.ok(Buffer.from(s, 'base64url').length >= 32)
    seen.add(s)
  }
  assert.equal(seen.size, 1000)
})

test('generated tokens are URL-safe, carry at least 256 bits and are unique', () => {
  const seen = new Set<string>()
  const n = 10_000
  for (let i = 0; i < n; i++) {
    const t = generateToken()
    assert.match(t, /^[A-Za-z0-9_-]+$/)
    assert.ok(t.length >= 43, `token too short: ${t}`)
    assert.ok(Buffer.from(t, 'base64url').length >= 32)
    seen.add(t)
  }
  assert.equal(seen.size, n)
})

test('hashToken is stable, differs between tokens and does not reveal the token', () => {
  const token = generateToken()
  const h = hashToken(token)
  assert.equal(hashToken(token), h)
  assert.equal(hashToken(String(token)), h)
  assert.notEqual(hashToken(generateToken()), h)
  assert.notEqual(hashToken(token + 'x'), h)
  assert.ok(!h.includes(token))
  assert.notEqual(h, token)
  // A known vector pins the algorithm, so stored token keys stay valid across releases.
  assert.equal(hashToken('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
})

test('matchesAnyKey accepts any of several keys and rejects everything else', () => {
  const keys = ['first-admin-key-0001', 'second-admin-key-0002', 'third-admin-key-0003']
  for (const k of keys) assert.equal(matchesAnyKey(k, keys), true, k)
  for (const given of [
    '',
    'first-admin-key-000', // a prefix of a key
    'first-admin-key', // a shorter prefix
    'first-admin-key-00011', // a key with a suffix
    'FIRST-ADMIN-KEY-0001',
    ' first-admin-key-0001',
    'first-admin-key-0001,second-admin-key-0002',
    'unrelated'
  ]) {
    assert.equal(matchesAnyKey(given, keys), false, JSON.stringify(given))
  }
})

test('matchesAnyKey with no keys matches nothing', () => {
  assert.equal(matchesAnyKey('', []), false)
  assert.equal(matchesAnyKey('anything-at-all-000', []), false)
})
