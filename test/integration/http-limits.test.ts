import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { test } from 'node:test'
import { API_CSP, PAGE_CSP } from '../../src/http/security-headers.ts'
import { startTestPlatform } from '../helpers/platform.ts'

function assertSecurityHeaders (res: Response, csp: string, what: string): void {
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff', what)
  assert.equal(res.headers.get('x-frame-options'), 'DENY', what)
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer', what)
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin', what)
  assert.equal(res.headers.get('cross-origin-resource-policy'), 'same-origin', what)
  // Directives compared one by one: separators may or may not carry a space.
  assert.deepEqual(res.headers.get('content-security-policy')?.split(/;\s*/), csp.split('; '), what)
  // HSTS belongs to whoever terminates TLS in front of the API.
  assert.equal(res.headers.get('strict-transport-security'), null, what)
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
  const dashboard = await fetch(`${p.httpUrl}/dashboard`)
  await dashboard.arrayBuffer()
  assertSecurityHeaders(dashboard, PAGE_CSP, '/dashboard')
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

/** Sends `request` as raw bytes and resolves with the status and JSON body of the answer, read until the node closes. */
async function rawHttp (port: number, request: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const socket = netConnect(port, '127.0.0.1')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.on('error', () => {})
  await new Promise<void>((resolve) => { socket.once('close', () => resolve()); socket.write(request) })
  const [head = '', body = ''] = text.split('\r\n\r\n')
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]), body: JSON.parse(body) as Record<string, unknown> }
}

const nested = (depth: number): unknown => {
  let v: unknown = 'leaf'
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { v }
  return v
}

test('414, 431 and malformed HTTP answer in the error contract {"error","message"} with stable codes', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const long = await p.api('GET', `/v1/admin/devices/${'a'.repeat(500)}`)
  assert.equal(long.status, 414)
  assert.deepEqual(long.body, { error: 'IOT_ERR_URI_TOO_LONG', message: 'a path parameter is too long' })

  const headers = await rawHttp(p.httpPort, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  assert.equal(headers.status, 431)
  assert.equal(headers.body.error, 'IOT_ERR_HEADERS_TOO_LARGE')
  assert.equal(typeof headers.body.message, 'string')
  const url = await rawHttp(p.httpPort, `GET /v1/admin/devices?after=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)
  assert.equal(url.status, 431, 'a request line over the header limit is refused with the headers')
  assert.equal(url.body.error, 'IOT_ERR_HEADERS_TOO_LARGE')

  const garbage = await rawHttp(p.httpPort, 'NOT HTTP AT ALL\r\n\r\n')
  assert.equal(garbage.status, 400)
  assert.equal(garbage.body.error, 'IOT_ERR_BAD_REQUEST')
  assert.equal((await fetch(`${p.httpUrl}/healthz`)).status, 200, 'the node serves on')
})

test('a JSON body nested deeper than 64 levels is refused with 400 IOT_ERR_JSON_TOO_DEEP and creates nothing; brackets in strings do not count', { timeout: 60_000 }, async (t) => {
  const p = await startTestPlatform(t)
  // 5,000 levels: what made the node answer 500 (a stack overflow after parsing), for a device and for a push.
  const deep = await p.api('POST', '/v1/admin/devices', `{"id":"deep","metadata":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`)
  assert.equal(deep.status, 400)
  assert.equal(deep.body.error, 'IOT_ERR_JSON_TOO_DEEP')
  assert.equal(typeof deep.body.message, 'string')
  const deepPush = await p.api('POST', '/v1/admin/push', `{"all":true,"data":${'['.repeat(5000)}${']'.repeat(5000)}}`)
  assert.equal(deepPush.status, 400)
  assert.equal(deepPush.body.error, 'IOT_ERR_JSON_TOO_DEEP')
  const justOver = await p.api('POST', '/v1/admin/push', { all: true, data: nested(65) })
  assert.equal(justOver.status, 400)
  assert.equal(justOver.body.error, 'IOT_ERR_JSON_TOO_DEEP')
  assert.equal((await p.api('GET', '/v1/admin/devices/deep')).status, 404)

  const fine = await p.api('POST', '/v1/admin/devices', { id: 'not-deep', metadata: { nested: nested(20), text: '[[[[{{{{'.repeat(100) } })
  assert.equal(fine.status, 201, JSON.stringify(fine.body))
  assert.equal((await p.api('POST', '/v1/admin/devices', '{"id": ')).body.error, 'IOT_ERR_INVALID_JSON', 'bad JSON is still IOT_ERR_INVALID_JSON')
  const poisoned = await p.api('POST', '/v1/admin/devices', '{"id":"p","__proto__":{"x":1}}')
  assert.deepEqual([poisoned.status, poisoned.body.error], [400, 'IOT_ERR_INVALID_JSON'], 'prototype poisoning is still refused')
})
