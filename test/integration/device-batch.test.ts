import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { connectDevice } from '../helpers/mqtt.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from '../helpers/platform.ts'

// POST /v1/admin/devices/batch, in embedded mode and with Redis.

const modes = [
  { mode: 'memory', start: async (t: TestContext) => await startTestPlatform(t) },
  { mode: 'redis', start: async (t: TestContext) => await startTestPlatform(t, { clusterPrefix: uniquePrefix() }) }
]

async function count (p: TestPlatform): Promise<number> {
  let n = 0
  let after: string | undefined
  for (;;) {
    const page = await p.api('GET', `/v1/admin/devices?limit=1000${after === undefined ? '' : `&after=${after}`}`)
    n += (page.body.devices as unknown[]).length
    after = page.body.next
    if (after === undefined) return n
  }
}

for (const { mode, start } of modes) {
  test(`${mode}: a batch creates the free valid ids, fails taken and invalid ones one by one, and shows each secret once`, { timeout: 30_000 }, async (t) => {
    const p = await start(t)
    await p.createDevice('taken-1')
    const res = await p.api('POST', '/v1/admin/devices/batch', {
      devices: [
        { id: 'b-1', groups: ['hall'] },
        { id: 'taken-1' },
        { id: 'bad id!' },
        { id: 'b-2', metadata: { model: 'x' } },
        { id: 'b-3', groups: ['not a group'] },
        { id: 'x'.repeat(65) }
      ]
    })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.deepEqual(res.body.created.map((d: { id: string }) => d.id), ['b-1', 'b-2'])
    assert.deepEqual(res.body.created[0].groups, ['hall'])
    assert.deepEqual(new Set(res.body.failed.map((f: { id: string, error: string }) => `${f.id}:${f.error}`)),
      new Set(['taken-1:IOT_ERR_DEVICE_EXISTS', 'bad id!:IOT_ERR_VALIDATION', 'b-3:IOT_ERR_VALIDATION', `${'x'.repeat(65)}:IOT_ERR_VALIDATION`]))
    assert.deepEqual((await p.api('GET', '/v1/admin/devices/b-2')).body.metadata, { model: 'x' })
    const token = await p.token('b-1', res.body.created[0].secret as string)
    await connectDevice(t, p.mqttUrl, 'b-1', token)
    assert.equal(await count(p), 3)
    assert.ok(!p.logText().includes(res.body.created[0].secret as string), 'secrets are not logged')
  })

  test(`${mode}: a whole batch of 10,000 is created`, { timeout: 60_000 }, async (t) => {
    const p = await start(t)
    const devices = Array.from({ length: 10_000 }, (_, i) => ({ id: `fleet-${String(i).padStart(5, '0')}`, groups: ['fleet'] }))
    const res = await p.api('POST', '/v1/admin/devices/batch', { devices })
    assert.equal(res.status, 200)
    assert.equal(res.body.created.length, 10_000)
    assert.deepEqual(res.body.failed, [])
    assert.equal(new Set(res.body.created.map((d: { secret: string }) => d.secret)).size, 10_000, 'every secret differs')
    assert.equal(await count(p), 10_000)
    const last = res.body.created[9999] as { id: string, secret: string }
    assert.equal((await p.api('POST', `/v1/devices/${last.id}/token`, { secret: last.secret }, {})).status, 200)
  })

  test(`${mode}: an empty batch, one over 10,000, repeated ids, a body over the limit and a wrong shape get 400/413 with stable codes and write nothing`, { timeout: 60_000 }, async (t) => {
    const p = await start(t)
    const cases: Array<[string, unknown, number, string]> = [
      ['empty', { devices: [] }, 400, 'IOT_ERR_BATCH_EMPTY'],
      ['over 10,000', { devices: Array.from({ length: 10_001 }, (_, i) => ({ id: `o-${i}` })) }, 400, 'IOT_ERR_BATCH_TOO_LARGE'],
      ['over 10,000 with a bad item', { devices: [{ id: 1 }, ...Array.from({ length: 10_000 }, (_, i) => ({ id: `o-${i}` }))] }, 400, 'IOT_ERR_BATCH_TOO_LARGE'],
      ['repeated ids', { devices: [{ id: 'r-1' }, { id: 'r-2' }, { id: 'r-1' }] }, 400, 'IOT_ERR_BATCH_DUPLICATE_ID'],
      ['body over the limit', { devices: Array.from({ length: 9000 }, (_, i) => ({ id: `l-${i}`, metadata: { pad: 'p'.repeat(1000) } })) }, 413, 'IOT_ERR_PAYLOAD_TOO_LARGE'],
      ['not a list', { devices: 'a,b' }, 400, 'IOT_ERR_VALIDATION'],
      ['an item without an id', { devices: [{ id: 'ok-1' }, { groups: [] }] }, 400, 'IOT_ERR_VALIDATION'],
      ['an unknown field', { devices: [{ id: 'ok-1', secret: 'mine' }] }, 400, 'IOT_ERR_VALIDATION'],
      ['no devices field', {}, 400, 'IOT_ERR_VALIDATION'],
      ['not JSON', '{"devices": [', 400, 'IOT_ERR_INVALID_JSON']
    ]
    for (const [what, body, status, code] of cases) {
      const res = await p.api('POST', '/v1/admin/devices/batch', body)
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body).slice(0, 200)}`)
      assert.equal(res.body.error, code, what)
      assert.equal(typeof res.body.message, 'string', what)
    }
    assert.equal(await count(p), 0, 'nothing was written')
    assert.equal((await p.api('POST', '/v1/admin/devices/batch', { devices: [{ id: 'a' }] }, {})).status, 401, 'operators only')
  })
}

test('the batch route is in the OpenAPI document with its limits and error codes', { timeout: 30_000 }, async (t) => {
  const p = await startTestPlatform(t)
  const doc = await p.api('GET', '/docs/json', undefined, {})
  const op = doc.body.paths['/v1/admin/devices/batch']?.post
  assert.ok(op !== undefined)
  const schema = op.requestBody.content['application/json'].schema
  assert.equal(schema.properties.devices.maxItems, 10_000)
  assert.equal(schema.properties.devices.minItems, 1)
  assert.ok(op.responses['200'] !== undefined)
  assert.match(op.responses['400'].description, /IOT_ERR_BATCH_TOO_LARGE/)
  assert.match(op.responses['400'].description, /IOT_ERR_BATCH_DUPLICATE_ID/)
  assert.match(op.responses['400'].description, /IOT_ERR_BATCH_EMPTY/)
  assert.ok(op.responses['413'] !== undefined)
})
