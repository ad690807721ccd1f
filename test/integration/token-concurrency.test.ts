import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { bounded, waitUntil } from '../helpers/eventually.ts'
import { startTestPlatform, uniquePrefix } from '../helpers/platform.ts'
import { redisUrl } from '../helpers/services.ts'

// PUSHLINE_TOKEN_CONCURRENCY bounds the token requests one process works on, PUSHLINE_TOKEN_QUEUE those waiting for
// a slot; one more is refused at once. The requests are held in progress by pausing Redis's writes (every token
// request starts with a Lua script, which a WRITE pause holds), so the counts do not depend on timing.

interface Answer { readonly status: number, readonly retryAfter: string | null, readonly body: Record<string, unknown> }

test('token requests over the concurrency bound wait in the queue; beyond the queue 503 IOT_ERR_BUSY with Retry-After, and nothing is lost', { timeout: 180_000 }, async (t) => {
  const prefix = uniquePrefix()
  const p = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_TOKEN_CONCURRENCY: '2', PUSHLINE_TOKEN_QUEUE: '3' } })
  const ids = Array.from({ length: 6 }, (_, i) => `cap-${i}`)
  const secrets = new Map<string, string>()
  for (const id of ids) secrets.set(id, await p.createDevice(id))
  const ask = async (id: string): Promise<Answer> => {
    const res = await fetch(`${p.httpUrl}/v1/devices/${id}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret: secrets.get(id) }) })
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() as Record<string, unknown> }
  }

  const control = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  // Unpaused by hand below, and in any case when the test ends, before the connection closes.
  t.after(async () => { await control.call('CLIENT', 'UNPAUSE'); await control.quit() })
  await control.call('CLIENT', 'PAUSE', '120000', 'WRITE')
  const held = ids.slice(0, 5).map(async (id) => await ask(id))
  await waitUntil('all five requests in progress or queued', async () =>
    await p.metric('pushline_token_requests_in_flight') + await p.metric('pushline_token_requests_queued') === 5, 60_000)
  assert.equal(await p.metric('pushline_token_requests_in_flight'), 2, 'two in progress')
  assert.equal(await p.metric('pushline_token_requests_queued'), 3, 'three waiting')

  const refused = await bounded('the answer to a request beyond the queue', ask('cap-5'))
  assert.equal(refused.status, 503)
  assert.equal(refused.body.error, 'IOT_ERR_BUSY')
  assert.equal(typeof refused.body.message, 'string')
  assert.equal(refused.retryAfter, '1')
  assert.equal(await p.metric('pushline_token_requests_busy_total'), 1)

  await control.call('CLIENT', 'UNPAUSE')
  const answers = await bounded('the held requests', Promise.all(held))
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200], JSON.stringify(answers))
  assert.equal(await p.metric('pushline_token_requests_in_flight'), 0)
  assert.equal(await p.metric('pushline_token_requests_queued'), 0)
  // The refused request reached no rate counter: the device's first request after it is its first counted.
  assert.equal(await control.exists(`${prefix}count:rate-device:cap-5`), 0, 'the refused request was not counted')
  assert.equal((await ask('cap-5')).status, 200)
})

test('a queued token request whose client closes its connection leaves the queue without its work', { timeout: 180_000 }, async (t) => {
  const prefix = uniquePrefix()
  const p = await startTestPlatform(t, { clusterPrefix: prefix, env: { PUSHLINE_TOKEN_CONCURRENCY: '1', PUSHLINE_TOKEN_QUEUE: '3' } })
  const ids = ['gone-held', 'gone-0', 'gone-1', 'gone-later']
  const secrets = new Map<string, string>()
  for (const id of ids) secrets.set(id, await p.createDevice(id))
  const ask = async (id: string, signal?: AbortSignal): Promise<number> =>
    (await fetch(`${p.httpUrl}/v1/devices/${id}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret: secrets.get(id) }), signal })).status

  const control = new Redis(redisUrl(), { maxRetriesPerRequest: 2 })
  t.after(async () => { await control.call('CLIENT', 'UNPAUSE'); await control.quit() })
  await control.call('CLIENT', 'PAUSE', '120000', 'WRITE')
  const held = ask('gone-held')
  await waitUntil('one request in progress', async () => await p.metric('pushline_token_requests_in_flight') === 1, 60_000)
  const leaving = new AbortController()
  const left = ['gone-0', 'gone-1'].map(async (id) => await ask(id, leaving.signal).catch((err: Error) => err.name))
  await waitUntil('two requests queued', async () => await p.metric('pushline_token_requests_queued') === 2, 60_000)

  leaving.abort()
  assert.deepEqual(await bounded('the aborted fetches', Promise.all(left)), ['AbortError', 'AbortError'])
  await waitUntil('both dropped from the queue', async () => await p.metric('pushline_token_requests_queued') === 0, 60_000)
  assert.equal(await p.metric('pushline_token_requests_abandoned_total'), 2)
  assert.equal(await p.metric('pushline_token_requests_in_flight'), 1, 'the request in progress is not dropped')

  await control.call('CLIENT', 'UNPAUSE')
  assert.equal(await bounded('the held request', held), 200)
  // A request whose work ran is counted by the device's rate limit first thing; the dropped ones never were.
  assert.equal(await control.exists(`${prefix}count:rate-device:gone-held`), 1, 'the held request was worked on')
  assert.equal(await control.exists(`${prefix}count:rate-device:gone-0`, `${prefix}count:rate-device:gone-1`), 0, 'the dropped requests were not')
  assert.equal(await ask('gone-later'), 200)
  assert.equal(await p.metric('pushline_token_requests_in_flight'), 0)
  assert.equal(await p.metric('pushline_token_requests_busy_total'), 0, 'a dropped request is not a refusal')
})
