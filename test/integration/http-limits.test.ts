import assert from 'node:assert/strict'
import { test } from 'node:test'
import { API_CSP, PAGE_CSP } from '../../src/http/security-headers.ts'
import { startTestPlatform } from '../helpers/platform.ts'

function assertSecurityHeaders (res: Response, csp: string, what: string): void {
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff', what)
  assert.equal(res.headers.get('x-frame-options'), 'DENY', what)
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer', what)
  assert.equal(res.headers.get('content-security-policy'), csp, what)
}

test('every HTTP response carries security headers: a deny-all policy on JSON, one that lets the /docs page load on HTML', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  for (const [path, init] of [
    ['/healthz', {}],
    ['/v1/no-such-route', {}],
    ['/v1/admin/devices', {}],
    ['/v1/devices/x/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }]
  ] as const) {
    const res = await fetch(p.httpUrl + path, init)
    await res.arrayBuffer()
    assertSecurityHeaders(res, API_CSP, path)
  }
  const page = await fetch(`${p.httpUrl}/docs/`)
  const html = await page.text()
  assert.equal(page.status, 200)
  assertSecurityHeaders(page, PAGE_CSP, '/docs/')
  // What the page loads is served from this origin, which the policy allows.
  const assets = [...html.matchAll(/(?:src|href)="\.?\/?([^"]+\.(?:js|css))"/g)].map((m) => m[1] as string)
  assert.ok(assets.length > 0, 'the page loads scripts and styles')
  for (const src of assets) {
    const asset = await fetch(`${p.httpUrl}/docs/${src.replace(/^docs\//, '')}`)
    await asset.arrayBuffer()
    assert.equal(asset.status, 200, src)
    assert.equal(asset.headers.get('x-content-type-options'), 'nosniff', src)
  }
  const spec = await fetch(`${p.httpUrl}/docs/json`)
  assert.equal(spec.status, 200)
  assert.ok((await spec.json() as { paths: Record<string, unknown> }).paths['/v1/devices/me/messages'] !== undefined)
})

test('message pulls are limited per device (429 with Retry-After), other devices are not affected', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_MESSAGES_RATE_DEVICE_PER_MINUTE: '3' } })
  const { token } = await p.provision('pull-limited')
  const { token: other } = await p.provision('pull-other')
  const pull = (tok: string): Promise<{ status: number, body: any }> => p.api('GET', '/v1/devices/me/messages', undefined, { authorization: `Bearer ${tok}` }) // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON bodies of any shape
  for (let i = 0; i < 3; i++) assert.equal((await pull(token)).status, 200)
  const res = await fetch(`${p.httpUrl}/v1/devices/me/messages`, { headers: { authorization: `Bearer ${token}` } })
  assert.equal(res.status, 429)
  assert.ok(Number(res.headers.get('retry-after')) >= 1)
  assert.deepEqual(await res.json(), { error: 'IOT_ERR_RATE_LIMITED', message: 'too many message pulls for this device' })
  assert.equal((await pull(other)).status, 200)
})

test('token, self-registration and message-pull requests share a per-address limit, checked before any token is looked up', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t, { env: { PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '4', PUSHLINE_PROVISIONING_KEY: 'provisioning-key-0123456789' } })
  const secret = await p.createDevice('addr-dev')
  assert.equal((await p.api('POST', '/v1/devices/addr-dev/token', { secret }, {})).status, 200)
  assert.equal((await p.api('GET', '/v1/devices/me/messages', undefined, { authorization: 'Bearer wrong' })).status, 401)
  assert.equal((await p.api('POST', '/v1/devices', { id: 'addr-self' }, { 'x-provisioning-key': 'provisioning-key-0123456789' })).status, 201)
  assert.equal((await p.api('GET', '/v1/devices/me/messages', undefined, { authorization: 'Bearer wrong' })).status, 401)
  // The fifth request from this address: refused whatever it carries.
  const limited = await p.api('GET', '/v1/devices/me/messages', undefined, { authorization: 'Bearer wrong' })
  assert.equal(limited.status, 429)
  assert.equal(limited.body.error, 'IOT_ERR_RATE_LIMITED')
  assert.equal((await p.api('POST', '/v1/devices/addr-dev/token', { secret }, {})).status, 429)
})

test('a request body over 1 MiB is refused with 413 and nothing is created', { timeout: 120_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const res = await p.api('POST', '/v1/admin/devices', { id: 'too-big', metadata: { blob: 'x'.repeat(1024 * 1024 + 1) } })
  assert.equal(res.status, 413)
  assert.equal(res.body.error, 'IOT_ERR_PAYLOAD_TOO_LARGE')
  assert.equal((await p.api('GET', '/v1/admin/devices/too-big')).status, 404)
})
