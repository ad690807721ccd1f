import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startTestPlatform } from '../helpers/platform.ts'
import { ROOT } from '../helpers/process.ts'

// The OpenAPI document at /docs/json is generated from the route schemas. It must be OpenAPI 3, hold every path
// of the contract (docs/http-api.md, docs/push.md) and every route the code registers, and give every operation typed responses.

interface Operation {
  parameters?: Array<{ in: string, name: string, required?: boolean, schema?: { default?: unknown } }>
  security?: Array<Record<string, string[]>>
  requestBody?: { content?: Record<string, { schema?: unknown }> }
  responses?: Record<string, { description?: string, content?: Record<string, { schema?: unknown }> }>
}
interface Document {
  openapi: string
  info: { title: string, version: string }
  paths: Record<string, Record<string, Operation>>
  components: { schemas?: Record<string, unknown>, securitySchemes?: Record<string, { type: string, scheme?: string, in?: string, name?: string }> }
}

/** The HTTP contract (docs/http-api.md, docs/push.md, docs/cluster.md). */
const CONTRACT: Array<[string, string]> = [
  ['post', '/v1/devices/{id}/token'],
  ['post', '/v1/devices'],
  ['get', '/v1/devices/me/messages'],
  ['post', '/v1/admin/devices'],
  ['get', '/v1/admin/devices'],
  ['get', '/v1/admin/devices/{id}'],
  ['delete', '/v1/admin/devices/{id}'],
  ['post', '/v1/admin/devices/{id}/revoke'],
  ['post', '/v1/admin/push'],
  ['get', '/v1/admin/push/{pushId}'],
  ['get', '/v1/admin/devices/{id}/messages'],
  ['get', '/v1/admin/devices/{id}/presence'],
  ['get', '/v1/admin/stats'],
  ['get', '/v1/admin/nodes'],
  ['post', '/v1/admin/nodes/{id}/drain'],
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/metrics']
]

async function fetchDocument (t: Parameters<typeof startTestPlatform>[0]): Promise<Document> {
  const p = await startTestPlatform(t)
  const res = await fetch(`${p.httpUrl}/docs/json`)
  assert.equal(res.status, 200)
  return await res.json() as Document
}

/** Every route the code registers (app.get('/path', …) in src/http/routes/), in OpenAPI path syntax. */
async function routesInCode (): Promise<Array<[string, string]>> {
  const dir = join(ROOT, 'src/http/routes')
  const found: Array<[string, string]> = []
  for (const file of await readdir(dir)) {
    const text = await readFile(join(dir, file), 'utf8')
    for (const m of text.matchAll(/app\.(get|post|put|patch|delete)\('([^']+)'/g)) {
      found.push([m[1] as string, (m[2] as string).replace(/:([A-Za-z]+)/g, '{$1}')])
    }
  }
  return found
}

/** Follows local $refs, failing on one that points nowhere. */
function resolve (doc: Document, schema: unknown): Record<string, unknown> {
  const s = schema as Record<string, unknown>
  if (typeof s.$ref !== 'string') return s
  const name = s.$ref.replace('#/components/schemas/', '')
  const target = doc.components.schemas?.[name]
  assert.ok(target !== undefined, `dangling $ref ${s.$ref}`)
  return target as Record<string, unknown>
}

test('the OpenAPI document is OpenAPI 3 and holds every path of the HTTP contract', { timeout: 120_000 }, async (t) => {
  const doc = await fetchDocument(t)
  assert.match(doc.openapi, /^3\.\d+\.\d+$/)
  assert.equal(doc.info.title, 'Pushline API')
  for (const [method, path] of CONTRACT) {
    assert.ok(doc.paths[path]?.[method] !== undefined, `${method.toUpperCase()} ${path} is missing from /docs/json`)
  }
})

test('every route the code registers is in the OpenAPI document', { timeout: 120_000 }, async (t) => {
  const doc = await fetchDocument(t)
  const routes = await routesInCode()
  assert.ok(routes.length >= CONTRACT.length, `found only ${routes.length} routes in src/http/routes`)
  for (const [method, path] of routes) {
    assert.ok(doc.paths[path]?.[method] !== undefined, `${method.toUpperCase()} ${path} is served but not documented`)
  }
})

test('every operation has typed responses, typed parameters and, where it takes one, a typed JSON body', { timeout: 120_000 }, async (t) => {
  const doc = await fetchDocument(t)
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method.toUpperCase()} ${path}`
      const responses = Object.entries(op.responses ?? {})
      assert.ok(responses.some(([status]) => status.startsWith('2')), `${where} has no success response`)
      for (const [status, response] of responses) {
        if (status === '204') {
          assert.equal(response.content, undefined, `${where} 204 has a body`)
          continue
        }
        const media = Object.values(response.content ?? {})
        assert.ok(media.length > 0 && media.every((m) => m.schema !== undefined), `${where} ${status} has no response schema`)
        if (/^[45]/.test(status)) {
          // Errors share one shape: {"error": IOT_ERR_*, "message"} (readyz's 503 is a readiness report).
          const schema = resolve(doc, media[0]?.schema)
          const properties = schema.properties as Record<string, unknown> | undefined
          assert.ok(properties?.error !== undefined || properties?.ready !== undefined, `${where} ${status} is not the error shape`)
        }
      }
      for (const name of [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) {
        assert.ok(op.parameters?.some((p) => p.in === 'path' && p.name === name && p.schema !== undefined), `${where} does not describe path parameter ${name}`)
      }
      if (op.requestBody !== undefined) {
        assert.ok(op.requestBody.content?.['application/json']?.schema !== undefined, `${where} has a body without a JSON schema`)
        for (const status of ['400', '413', '415']) assert.ok(op.responses?.[status] !== undefined, `${where} takes a body but does not document ${status}`)
      }
      assert.ok(op.responses?.['503'] !== undefined, `${where} does not document 503 (a backing service down)`)
      if (path.startsWith('/v1/admin/')) {
        assert.ok(op.responses?.['401'] !== undefined, `${where} does not document 401 for a missing admin key`)
        assert.deepEqual(op.security, [{ admin: [] }], `${where} does not name the admin bearer key`)
      }
    }
  }
})

test('the push request and its receipts document their trace id', { timeout: 120_000 }, async (t) => {
  const doc = await fetchDocument(t)
  const created = doc.paths['/v1/admin/push']?.post?.responses?.['202']?.content?.['application/json']?.schema as { properties: Record<string, unknown> }
  assert.ok(created.properties.traceId !== undefined)
  const receipts = doc.paths['/v1/admin/push/{pushId}']?.get?.responses?.['200']?.content?.['application/json']?.schema as { properties: Record<string, unknown> }
  assert.ok(receipts.properties.traceId !== undefined)
})

test('every operation declares its security: the admin key on admin routes, the device token or provisioning key on device routes, none on open ones', { timeout: 60_000 }, async (t) => {
  const doc = await fetchDocument(t)
  const schemes = doc.components.securitySchemes ?? {}
  assert.deepEqual({ type: schemes.admin?.type, scheme: schemes.admin?.scheme }, { type: 'http', scheme: 'bearer' })
  assert.deepEqual({ type: schemes.deviceToken?.type, scheme: schemes.deviceToken?.scheme }, { type: 'http', scheme: 'bearer' })
  assert.deepEqual({ type: schemes.provisioningKey?.type, in: schemes.provisioningKey?.in, name: schemes.provisioningKey?.name }, { type: 'apiKey', in: 'header', name: 'X-Provisioning-Key' })
  const expected = (method: string, path: string): Array<Record<string, string[]>> => {
    if (path.startsWith('/v1/admin/')) return [{ admin: [] }]
    if (path === '/v1/devices/me/messages') return [{ deviceToken: [] }]
    if (method === 'post' && path === '/v1/devices') return [{ provisioningKey: [] }]
    // The token request carries its secret or token in the body; health and metrics are open by design.
    return []
  }
  let admin = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      assert.deepEqual(op.security, expected(method, path), `${method.toUpperCase()} ${path}`)
      if (path.startsWith('/v1/admin/')) admin++
    }
  }
  assert.ok(admin >= 10, `only ${admin} admin operations`)
})

test('query parameters with a default are optional, and the dashboard\'s static files are not API operations', { timeout: 60_000 }, async (t) => {
  const doc = await fetchDocument(t)
  let withDefault = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const p of op.parameters ?? []) {
        if (p.in !== 'query' || p.schema?.default === undefined) continue
        withDefault++
        assert.notEqual(p.required, true, `${method.toUpperCase()} ${path}: ${p.name} has a default but is marked required`)
      }
    }
  }
  assert.ok(withDefault >= 5, `only ${withDefault} query parameters with defaults`)
  const messages = doc.paths['/v1/devices/me/messages']?.get?.parameters ?? []
  assert.deepEqual(messages.filter((p) => p.in === 'query').map((p) => [p.name, p.required === true]).sort(), [['after', false], ['limit', false]])
  assert.deepEqual(Object.keys(doc.paths).filter((path) => path.startsWith('/dashboard')), [])
  // Still served.
  const p = await startTestPlatform(t)
  assert.equal((await fetch(`${p.httpUrl}/dashboard`)).status, 200)
})
