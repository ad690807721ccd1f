import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { eventually } from '../helpers/eventually.ts'
import { startTestCluster } from '../helpers/cluster.ts'
import { openBrowser, waitForText } from '../helpers/browser.ts'
import { connectDevice } from '../helpers/mqtt.ts'
import { ADMIN_KEY } from '../helpers/platform.ts'
import { kafkaBrokers } from '../helpers/services.ts'

// The admin dashboard end to end: a real headless chromium against a running cluster (two broker processes and
// the API process, real Redis and Kafka) with devices connected over MQTT.

const HB = 500

test('the dashboard asks for the key, refuses a wrong one, shows nodes and online counts, pushes to a device and shows it delivered, looks a device up and drains a node', { timeout: 180_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: HB, env: { PUSHLINE_KAFKA_BROKERS: kafkaBrokers().join(',') } })
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[number], typeof cluster.nodes[number]]
  const tag = randomUUID().slice(0, 8)
  const ids = [`dash-${tag}-a`, `dash-${tag}-b`, `dash-${tag}-c`]
  const clients = await Promise.all(ids.map(async (id, i) => {
    const { token } = await cluster.api.provision(id)
    return await connectDevice(t, (i < 2 ? n1 : n2).mqttUrl, id, token)
  }))
  const target = clients[0] as typeof clients[number]
  const received: Array<{ topic: string, body: { pushId: string, data: unknown } }> = []
  target.on('message', (topic, payload) => { received.push({ topic, body: JSON.parse(payload.toString()) }) })
  assert.ok(await eventually(async () => (await cluster.stats()).online === 3, 30_000), 'the cluster never counted 3 devices online')

  const browser = await openBrowser(t)
  const page = await browser.newPage()
  const foreign: string[] = []
  page.on('request', (r) => { if (!r.url().startsWith(cluster.api.httpUrl)) foreign.push(r.url()) })
  const pageErrors: string[] = []
  page.on('pageerror', (err) => { pageErrors.push(err.message) })
  await page.goto(`${cluster.api.httpUrl}/dashboard`)

  // Without a key: only the key form.
  assert.equal(await page.locator('#key-form').isVisible(), true)
  assert.equal(await page.locator('#dashboard').isVisible(), false)

  // A wrong key is refused and shows nothing more.
  await page.fill('#key-input', 'not-the-admin-key-000000')
  await page.click('#key-form button[type=submit]')
  await waitForText(page, '#key-error', (s) => s.includes('Key not accepted'))
  assert.equal(await page.locator('#dashboard').isVisible(), false)
  assert.equal(await page.evaluate('sessionStorage.getItem("pushline-admin-key")'), null)

  // The right key opens the dashboard with the cluster's counts.
  await page.fill('#key-input', ADMIN_KEY)
  await page.click('#key-form button[type=submit]')
  await page.locator('#dashboard').waitFor({ state: 'visible' })
  await waitForText(page, '#node-count', (s) => s === '2')
  await waitForText(page, '#online-count', (s) => s === '3')
  await waitForText(page, '#drift-count', (s) => s === '0')
  await waitForText(page, `#nodes tr[data-node="${n1.nodeId}"] td:nth-child(3)`, (s) => s === '2')
  await waitForText(page, `#nodes tr[data-node="${n2.nodeId}"] td:nth-child(3)`, (s) => s === '1')
  await waitForText(page, `#nodes tr[data-node="${n1.nodeId}"] td:nth-child(2)`, (s) => s === 'healthy')

  // Uplinks while the page watches: the uplink and Kafka rates rise above zero.
  const load = { sending: true }
  const sender = (async () => {
    while (load.sending) {
      await Promise.all(clients.map((c, i) => c.publishAsync(`devices/${ids[i] as string}/telemetry`, JSON.stringify({ t: Date.now() }), { qos: 1 })))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  try {
    await waitForText(page, '#rate-uplinks', (s) => Number(s.replace(/,/g, '')) > 0)
    await waitForText(page, '#rate-kafka', (s) => Number(s.replace(/,/g, '')) > 0, 40_000)
  } finally {
    load.sending = false
    await sender
  }
  assert.ok(await page.locator('#chart-uplinks polyline').count() === 1, 'the uplink chart has no line')

  // A push from the form reaches the device and shows as delivered in the recent pushes.
  const marker = randomUUID()
  await page.selectOption('#push-target', 'deviceId')
  await page.fill('#push-to', ids[0] as string)
  await page.fill('#push-data', JSON.stringify({ marker }))
  await page.click('#push-form button[type=submit]')
  await waitForText(page, '#push-result', (s) => s.startsWith('Accepted: p-'))
  const pushId = await page.locator('#push-result').getAttribute('data-push-id') as string
  assert.ok(await eventually(async () => received.some((m) => m.body.pushId === pushId), 30_000), 'the device never received the push')
  const got = received.find((m) => m.body.pushId === pushId)
  assert.equal(got?.topic, `devices/${ids[0] as string}/down`)
  assert.deepEqual(got?.body.data, { marker })
  await waitForText(page, `#pushes tr[data-push="${pushId}"] td:nth-child(2)`, (s) => s === `device ${ids[0] as string}`)
  await waitForText(page, `#pushes tr[data-push="${pushId}"] td:nth-child(7)`, (s) => s === '1')
  // Selecting the push shows the device's receipt.
  await page.click(`#pushes tr[data-push="${pushId}"]`)
  await waitForText(page, '#push-detail-id', (s) => s === pushId)
  await waitForText(page, `#receipts tr[data-device="${ids[0] as string}"] td:nth-child(2)`, (s) => s === 'delivered')
  await page.click('#push-detail-close')
  assert.equal(await page.locator('#push-detail').isVisible(), false)

  // The downlink rate is above zero for one refresh only: the chart keeps it.
  assert.ok(await eventually(async () => Number(await page.locator('#chart-downlinks').getAttribute('data-max')) > 0, 30_000), 'the downlink chart stayed at zero')

  // A broadcast to every device from the form reaches a subscribed device.
  await target.subscribeAsync('broadcast/all', { qos: 1 })
  await page.selectOption('#push-target', 'all')
  assert.equal(await page.locator('#push-to').isVisible(), false)
  await page.fill('#push-data', JSON.stringify({ marker: `all-${marker}` }))
  await page.click('#push-form button[type=submit]')
  await waitForText(page, '#push-result', (s) => s.startsWith('Accepted: p-') && !s.includes(pushId))
  const broadcastId = await page.locator('#push-result').getAttribute('data-push-id') as string
  assert.ok(await eventually(async () => received.some((m) => m.topic === 'broadcast/all' && m.body.pushId === broadcastId), 30_000), 'the device never received the broadcast')
  await waitForText(page, `#pushes tr[data-push="${broadcastId}"] td:nth-child(2)`, (s) => s === 'every device')
  await page.selectOption('#push-target', 'deviceId')

  // A push to an unknown device is refused with the API's message.
  await page.fill('#push-to', `nobody-${tag}`)
  await page.click('#push-form button[type=submit]')
  await waitForText(page, '#push-result', (s) => s.includes('does not exist'))

  // Device lookup: presence and history.
  assert.equal(await page.locator('#presence').isVisible(), false)
  await page.fill('#lookup-id', ids[0] as string)
  await page.click('#lookup-form button[type=submit]')
  await waitForText(page, '#presence-online', (s) => s === 'online')
  await waitForText(page, '#presence-node', (s) => s === n1.nodeId)
  await waitForText(page, '#history tbody', (s) => s.includes(pushId))
  await page.fill('#lookup-id', `nobody-${tag}`)
  await page.click('#lookup-form button[type=submit]')
  await waitForText(page, '#lookup-error', (s) => s.includes('does not exist') || s.includes('not found'))

  // Drain a node from its button (after the confirm): its device is moved off and the node shows draining.
  page.once('dialog', (d) => { d.accept().catch(() => {}) })
  await page.click(`button[data-drain="${n2.nodeId}"]`)
  await waitForText(page, `#nodes tr[data-node="${n2.nodeId}"] td:nth-child(6)`, (s) => s === 'draining')
  assert.ok(await eventually(async () => !(clients[2]?.connected ?? true), 30_000), 'the device on the drained node was not disconnected')
  await waitForText(page, '#online-count', (s) => s === '2')

  assert.deepEqual(foreign, [], 'the page loaded something from elsewhere')
  assert.deepEqual(pageErrors, [])
})

test('a dashboard whose key stops being accepted goes back to the key form', { timeout: 60_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 1, heartbeatMs: HB })
  const browser = await openBrowser(t)
  const page = await browser.newPage()
  await page.goto(`${cluster.api.httpUrl}/dashboard`)
  // A key from an earlier session that the API no longer accepts (rotated keys).
  await page.evaluate('sessionStorage.setItem("pushline-admin-key", "rotated-away-key-00000000")')
  await page.reload()
  await waitForText(page, '#key-error', (s) => s.startsWith('Signed out'))
  assert.equal(await page.locator('#dashboard').isVisible(), false)
  assert.equal(await page.evaluate('sessionStorage.getItem("pushline-admin-key")'), null)
})

test('the Online page lists the online devices with node, transport and address, pages through them, filters by node and kicks a device', { timeout: 120_000 }, async (t) => {
  const cluster = await startTestCluster(t, { nodes: 2, heartbeatMs: HB })
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[number], typeof cluster.nodes[number]]
  const tag = randomUUID().slice(0, 6)
  const ids = Array.from({ length: 13 }, (_, i) => `on-${tag}-${String(i).padStart(2, '0')}`)
  const clients = await Promise.all(ids.map(async (id, i) => {
    const { token } = await cluster.api.provision(id)
    return await connectDevice(t, (i < 4 ? n2 : n1).mqttUrl, id, token)
  }))
  assert.ok(await eventually(async () => (await cluster.stats()).online === ids.length, 20_000))

  const browser = await openBrowser(t)
  const page = await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (err) => { pageErrors.push(err.message) })
  await page.goto(`${cluster.api.httpUrl}/dashboard`)
  await page.fill('#key-input', ADMIN_KEY)
  await page.click('#key-form button[type=submit]')
  await page.locator('#dashboard').waitFor({ state: 'visible' })
  assert.equal(await page.locator('#online-page').isVisible(), false, 'the overview comes first')

  await page.click('#pages a[data-page="online"]')
  await page.locator('#online-page').waitFor({ state: 'visible' })
  assert.equal(await page.locator('#nodes').isVisible(), false, 'the overview is hidden on the Online page')
  await waitForText(page, '#online-summary', (s) => s === '13 online')
  const rowIds = async (): Promise<string[]> => await page.locator('#online tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-device') ?? ''))
  assert.ok(await eventually(async () => (await rowIds()).length === 13, 10_000))
  const first = ids[0] as string
  await waitForText(page, `#online tr[data-device="${first}"] td:nth-child(2)`, (s) => s === n2.nodeId)
  await waitForText(page, `#online tr[data-device="${first}"] td:nth-child(3)`, (s) => s === 'tcp')
  await waitForText(page, `#online tr[data-device="${first}"] td:nth-child(4)`, (s) => /^127\.0\.0\.1:\d+$/.test(s))

  // Ten per page: two pages, forward and back.
  await page.selectOption('#online-limit', '10')
  assert.ok(await eventually(async () => (await rowIds()).join() === ids.slice(0, 10).join(), 10_000), 'first page')
  assert.equal(await page.locator('#online-prev').isDisabled(), true)
  await page.click('#online-next')
  assert.ok(await eventually(async () => (await rowIds()).join() === ids.slice(10).join(), 10_000), 'second page')
  await waitForText(page, '#online-page-no', (s) => s === 'page 2')
  assert.equal(await page.locator('#online-next').isDisabled(), true)
  await page.click('#online-prev')
  assert.ok(await eventually(async () => (await rowIds()).join() === ids.slice(0, 10).join(), 10_000), 'back to the first page')

  // One node's devices only.
  await page.selectOption('#online-node', n2.nodeId)
  assert.ok(await eventually(async () => (await rowIds()).join() === ids.slice(0, 4).join(), 10_000), 'node 2\'s devices')

  // Kick one (after the confirm): its connection closes, it leaves the list, the others stay.
  const victim = clients[2] as typeof clients[number]
  const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()))
  page.once('dialog', (d) => { d.accept().catch(() => {}) })
  await page.click(`button[data-kick="${ids[2] as string}"]`)
  await waitForText(page, '#online-result', (s) => s === `Kicked ${ids[2] as string} on node ${n2.nodeId}`)
  await closed
  assert.ok(await eventually(async () => (await rowIds()).join() === [ids[0], ids[1], ids[3]].join(), 10_000), 'the kicked device left the list')
  await waitForText(page, '#online-summary', (s) => s === '12 online')
  assert.equal(clients.filter((c) => c.connected).length, 12)

  // Back to the overview.
  await page.click('#pages a[data-page="overview"]')
  await page.locator('#nodes').waitFor({ state: 'visible' })
  assert.equal(await page.locator('#online-page').isVisible(), false)
  assert.deepEqual(pageErrors, [])
})
