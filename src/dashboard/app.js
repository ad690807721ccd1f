/* global sessionStorage, Node, location */
// Pushline admin dashboard: plain browser JavaScript, no build step, no third-party code.
// Every call goes to the admin API with `Authorization: Bearer <key>`; the key stays in sessionStorage (this tab).
// A 401 or 403 anywhere signs out: without a valid key the page shows only the key form.

const KEY_ITEM = 'pushline-admin-key'
const POLL_MS = 2000
const CHART_POINTS = 90

const $ = (id) => document.getElementById(id)

class AuthError extends Error {}

/** Calls the admin API; resolves the JSON body, throws AuthError on 401/403 and Error with the API's message otherwise. */
async function api (method, path, body, key = sessionStorage.getItem(KEY_ITEM)) {
  const headers = { authorization: `Bearer ${key ?? ''}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let json
  try { json = text === '' ? undefined : JSON.parse(text) } catch { json = undefined }
  if (res.status === 401 || res.status === 403) throw new AuthError(json?.message ?? `HTTP ${res.status}`)
  if (!res.ok) throw new Error(json?.message ?? `HTTP ${res.status}`)
  return json
}

/** Builds an element with text content only (data never goes through innerHTML). */
function el (tag, text, attrs = {}) {
  const e = document.createElement(tag)
  if (text !== undefined) e.textContent = String(text)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  return e
}

function row (cells, attrs) {
  const tr = el('tr', undefined, attrs)
  for (const c of cells) tr.append(c instanceof Node ? wrapCell(c) : el('td', c))
  return tr
}

function wrapCell (node) {
  const td = el('td')
  td.append(node)
  return td
}

const time = (ms) => ms === null || ms === undefined ? '–' : new Date(ms).toLocaleString()
const fmt = (n) => n >= 100 ? Math.round(n).toLocaleString() : (Math.round(n * 10) / 10).toLocaleString()

// ------------------------------------------------------------------ sign-in

let timer

function showLogin (message) {
  clearTimeout(timer)
  timer = undefined
  sessionStorage.removeItem(KEY_ITEM)
  $('dashboard').hidden = true
  $('sign-out').hidden = true
  $('pages').hidden = true
  $('login').hidden = false
  $('key-error').textContent = message ?? ''
  $('status').textContent = ''
}

/** Shown only once the API has answered with this key: a stale key never shows an empty dashboard. */
function showDashboard () {
  $('login').hidden = true
  $('dashboard').hidden = false
  $('sign-out').hidden = false
  $('pages').hidden = false
  applyPage()
}

$('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  const key = $('key-input').value.trim()
  $('key-error').textContent = ''
  try {
    await api('GET', '/v1/admin/stats', undefined, key)
  } catch (err) {
    $('key-error').textContent = err instanceof AuthError ? `Key not accepted: ${err.message}` : `Cannot reach the API: ${err.message}`
    return
  }
  sessionStorage.setItem(KEY_ITEM, key)
  $('key-input').value = ''
  poll()
})

$('sign-out').addEventListener('click', () => showLogin())

/** Runs an operator action; a rejected key signs out, other errors go to `where`. */
async function guarded (where, fn) {
  try {
    await fn()
  } catch (err) {
    if (err instanceof AuthError) showLogin(`Signed out: ${err.message}`)
    else if (where !== undefined) where.textContent = err.message
    else $('status').textContent = `Error: ${err.message}`
  }
}

// ------------------------------------------------------------------ rates from successive heartbeat samples

const COUNTERS = ['uplinks', 'downlinks', 'kafkaRecords']
/** nodeId -> { heartbeatAt, traffic, rates } from the last sample that moved. */
const lastSample = new Map()
const series = { uplinks: [], downlinks: [], kafkaRecords: [], spoolDepth: [] }

function updateRates (summary) {
  const live = new Set()
  for (const n of summary.nodes) {
    live.add(n.nodeId)
    if (n.traffic === null) continue
    const prev = lastSample.get(n.nodeId)
    if (prev === undefined || prev.startedAt !== n.startedAt) {
      lastSample.set(n.nodeId, { heartbeatAt: n.heartbeatAt, startedAt: n.startedAt, traffic: n.traffic, rates: undefined })
      continue
    }
    if (n.heartbeatAt <= prev.heartbeatAt) continue
    const seconds = (n.heartbeatAt - prev.heartbeatAt) / 1000
    const rates = {}
    for (const k of COUNTERS) rates[k] = Math.max(0, n.traffic[k] - prev.traffic[k]) / seconds
    lastSample.set(n.nodeId, { heartbeatAt: n.heartbeatAt, startedAt: n.startedAt, traffic: n.traffic, rates })
  }
  for (const id of [...lastSample.keys()]) if (!live.has(id)) lastSample.delete(id)

  const total = { uplinks: 0, downlinks: 0, kafkaRecords: 0 }
  let known = false
  for (const s of lastSample.values()) {
    if (s.rates === undefined) continue
    known = true
    for (const k of COUNTERS) total[k] += s.rates[k]
  }
  for (const k of COUNTERS) push(series[k], known ? total[k] : 0)
  push(series.spoolDepth, summary.totals.spoolDepth)
  $('rate-uplinks').textContent = known ? fmt(total.uplinks) : '–'
  $('rate-downlinks').textContent = known ? fmt(total.downlinks) : '–'
  $('rate-kafka').textContent = known ? fmt(total.kafkaRecords) : '–'
  $('spool-depth').textContent = summary.totals.spoolDepth.toLocaleString()
  drawChart($('chart-uplinks'), series.uplinks)
  drawChart($('chart-downlinks'), series.downlinks)
  drawChart($('chart-kafka'), series.kafkaRecords)
  drawChart($('chart-spool'), series.spoolDepth)
}

function push (list, value) {
  list.push(value)
  if (list.length > CHART_POINTS) list.shift()
}

const SVG = 'http://www.w3.org/2000/svg'

/** A line chart of the last CHART_POINTS samples in a 300 x 100 view box, scaled to the largest value. */
function drawChart (svg, values) {
  const max = Math.max(1, ...values)
  const x = (i) => (i + CHART_POINTS - values.length) * 300 / (CHART_POINTS - 1)
  const y = (v) => 96 - (v / max) * 90
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
  svg.replaceChildren()
  svg.dataset.max = String(Math.max(0, ...values))
  for (const gy of [6, 51, 96]) {
    const line = document.createElementNS(SVG, 'line')
    Object.entries({ x1: 0, x2: 300, y1: gy, y2: gy, class: 'grid' }).forEach(([k, v]) => line.setAttribute(k, v))
    svg.append(line)
  }
  if (values.length > 1) {
    const area = document.createElementNS(SVG, 'polygon')
    area.setAttribute('class', 'area')
    area.setAttribute('points', `${x(0).toFixed(1)},96 ${points} ${x(values.length - 1).toFixed(1)},96`)
    const line = document.createElementNS(SVG, 'polyline')
    line.setAttribute('class', 'line')
    line.setAttribute('points', points)
    svg.append(area, line)
  }
  const label = document.createElementNS(SVG, 'title')
  label.textContent = `now ${fmt(values.at(-1) ?? 0)}, max ${fmt(max)}`
  svg.append(label)
  svg.closest('figure').querySelector('.scale').textContent = `now ${fmt(values.at(-1) ?? 0)} · max ${fmt(max)}`
}

// ------------------------------------------------------------------ nodes, counts, pushes

function renderNodes (nodes, stats) {
  const byId = new Map(stats.nodes.map((n) => [n.nodeId, n]))
  const body = $('nodes').querySelector('tbody')
  body.replaceChildren(...nodes.map((n) => {
    const s = byId.get(n.nodeId)
    const button = el('button', n.drainRequested ? 'Cancel drain' : 'Drain', { type: 'button', class: n.drainRequested ? 'secondary' : '', 'data-drain': n.nodeId })
    button.addEventListener('click', () => drain(n.nodeId, !n.drainRequested))
    return row([
      n.nodeId,
      el('span', n.healthy ? 'healthy' : 'no heartbeat', { class: n.healthy ? 'healthy' : 'unhealthy' }),
      n.connections,
      s?.presence ?? '–',
      s?.drift ?? '–',
      n.draining ? 'draining' : n.drainRequested ? 'requested' : 'no',
      n.mqtt,
      button
    ], { 'data-node': n.nodeId })
  }))
  $('node-count').textContent = String(nodes.length)
  $('online-count').textContent = String(stats.online)
  $('online-summary').textContent = `${stats.online.toLocaleString()} online`
  fillNodeChoice(nodes.map((n) => n.nodeId))
  $('drift-count').textContent = String(stats.nodes.reduce((sum, n) => sum + n.drift, 0))
}

async function drain (nodeId, on) {
  const question = on
    ? `Drain node ${nodeId}? It refuses new connections and closes its connections in waves; devices move to other nodes.`
    : `Cancel the drain of node ${nodeId}?`
  if (!window.confirm(question)) return
  await guarded(undefined, async () => {
    await api(on ? 'POST' : 'DELETE', `/v1/admin/nodes/${encodeURIComponent(nodeId)}/drain`)
    await poll()
  })
}

function describeTarget (t) {
  if (t.kind === 'device') return `device ${t.deviceId}`
  if (t.kind === 'devices') return `${t.count} devices`
  if (t.kind === 'group') return `group ${t.group}`
  return 'every device'
}

let selectedPush

function renderPushes (pushes) {
  $('pushes').querySelector('tbody').replaceChildren(...pushes.map((p) => {
    const tr = row([
      p.pushId, describeTarget(p.target), time(p.createdAt), p.qos,
      p.counts.queued, p.counts.sent, p.counts.delivered, p.counts.acked, p.counts.expired, p.counts.failed
    ], { 'data-push': p.pushId, class: p.pushId === selectedPush ? 'selected' : '' })
    tr.addEventListener('click', () => { selectedPush = p.pushId; showReceipts() })
    return tr
  }))
  if (selectedPush !== undefined) showReceipts()
}

/** The selected push's receipts, one row per device (the first 100 by device id); group and broadcast pushes keep counts only. */
async function showReceipts () {
  const pushId = selectedPush
  await guarded($('push-detail-note'), async () => {
    const view = await api('GET', `/v1/admin/push/${encodeURIComponent(pushId)}?limit=100`)
    if (pushId !== selectedPush) return
    for (const tr of $('pushes').querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.dataset.push === pushId)
    $('push-detail-id').textContent = pushId
    const targeted = view.target.kind === 'device' || view.target.kind === 'devices'
    const total = view.progress.total === undefined ? '' : ` of ${view.progress.total}`
    $('push-detail-note').textContent = targeted
      ? `${view.progress.processed}${total} devices processed${view.progress.done ? '' : ' (still running)'}${view.next === undefined ? '' : '; the first 100 devices are shown'}`
      : `${describeTarget(view.target)}: counts only, no receipt per device`
    $('receipts').querySelector('tbody').replaceChildren(...view.devices.map((r) => row([r.deviceId, r.state, r.id ?? '–', r.reason ?? '', time(r.at)], { 'data-device': r.deviceId })))
    $('receipts').hidden = !targeted
    $('push-detail').hidden = false
  })
}

$('push-detail-close').addEventListener('click', () => {
  selectedPush = undefined
  $('push-detail').hidden = true
  for (const tr of $('pushes').querySelectorAll('tbody tr')) tr.classList.remove('selected')
})

let polling = false

async function poll () {
  clearTimeout(timer)
  if (polling) return
  polling = true
  try {
    const [nodes, stats, summary, pushes] = await Promise.all([
      api('GET', '/v1/admin/nodes'),
      api('GET', '/v1/admin/stats'),
      api('GET', '/v1/admin/metrics/summary'),
      api('GET', '/v1/admin/push?limit=20')
    ])
    renderNodes(nodes.nodes, stats)
    updateRates(summary)
    renderPushes(pushes.pushes)
    showDashboard()
    if (currentPage() === 'online') await loadOnline()
    $('status').textContent = `updated ${new Date().toLocaleTimeString()}`
  } catch (err) {
    if (err instanceof AuthError) {
      polling = false
      showLogin(`Signed out: ${err.message}`)
      return
    }
    $('status').textContent = `update failed: ${err.message}`
  } finally {
    polling = false
  }
  if (sessionStorage.getItem(KEY_ITEM) !== null) timer = setTimeout(poll, POLL_MS)
}

// ------------------------------------------------------------------ push form

const TARGET_LABELS = { deviceId: 'Device id', group: 'Group' }

$('push-target').addEventListener('change', () => {
  const target = $('push-target').value
  $('push-to-label').hidden = target === 'all'
  $('push-to-label').firstChild.textContent = `${TARGET_LABELS[target] ?? ''} `
})

$('push-form').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  const out = $('push-result')
  out.className = ''
  out.textContent = ''
  let data
  try {
    data = JSON.parse($('push-data').value)
  } catch (err) {
    out.className = 'error'
    out.textContent = `Data is not valid JSON: ${err.message}`
    return
  }
  const target = $('push-target').value
  const to = $('push-to').value.trim()
  if (target !== 'all' && to === '') {
    out.className = 'error'
    out.textContent = `Give a ${TARGET_LABELS[target].toLowerCase()}`
    return
  }
  const body = { data, qos: Number($('push-qos').value), ttlSeconds: Number($('push-ttl').value) }
  if (target === 'all') body.all = true
  else body[target] = to
  out.className = 'error'
  await guarded(out, async () => {
    const { pushId } = await api('POST', '/v1/admin/push', body)
    out.className = ''
    out.textContent = `Accepted: ${pushId}`
    out.dataset.pushId = pushId
    await poll()
  })
})

// ------------------------------------------------------------------ device lookup

$('lookup-form').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  const id = $('lookup-id').value.trim()
  const error = $('lookup-error')
  error.textContent = ''
  $('presence').hidden = true
  $('history').hidden = true
  await guarded(error, async () => {
    const path = `/v1/admin/devices/${encodeURIComponent(id)}`
    const presence = await api('GET', `${path}/presence`)
    // History pages come oldest first: walk them (bounded) and keep the newest 20.
    let latest = []
    let after = 0
    for (let page = 0; page < 50; page++) {
      const { messages } = await api('GET', `${path}/messages?after=${after}&limit=1000`)
      latest = [...latest, ...messages].slice(-20)
      if (messages.length < 1000) break
      after = messages.at(-1).id
    }
    $('presence-online').textContent = presence.online ? 'online' : 'offline'
    $('presence-node').textContent = presence.nodeId ?? '–'
    $('presence-connected').textContent = time(presence.connectedAt)
    $('presence-seen').textContent = time(presence.lastSeen)
    $('presence').hidden = false
    $('history').querySelector('tbody').replaceChildren(...latest.reverse().map((m) => row([m.id, m.pushId, time(m.sentAt), m.qos, JSON.stringify(m.data)])))
    $('history').hidden = false
  })
})

// ------------------------------------------------------------------ pages: the overview and the online devices

const currentPage = () => location.hash === '#online' ? 'online' : 'overview'

/** Shows the sections of the page the address names (#online, or the overview). */
function applyPage () {
  const online = currentPage() === 'online'
  for (const section of $('dashboard').children) section.hidden = (section.id === 'online-page') !== online
  for (const a of $('pages').querySelectorAll('a')) a.classList.toggle('current', a.dataset.page === currentPage())
}

window.addEventListener('hashchange', () => {
  applyPage()
  if (currentPage() === 'online') loadOnline()
})

// The online listing pages by cursor: `cursors` holds the `after` of each page seen so far, so Previous goes back.
const online = { cursors: [undefined], index: 0, request: 0 }

function fillNodeChoice (nodeIds) {
  const select = $('online-node')
  const known = [...select.options].slice(1).map((o) => o.value)
  if (known.join() === nodeIds.join()) return
  const chosen = select.value
  select.replaceChildren(el('option', 'every node', { value: '' }), ...nodeIds.map((id) => el('option', id, { value: id })))
  select.value = nodeIds.includes(chosen) ? chosen : ''
}

async function loadOnline () {
  const request = ++online.request
  const query = new URLSearchParams({ online: 'true', limit: $('online-limit').value })
  const after = online.cursors[online.index]
  if (after !== undefined) query.set('after', after)
  if ($('online-node').value !== '') query.set('node', $('online-node').value)
  await guarded($('online-error'), async () => {
    const page = await api('GET', `/v1/admin/devices?${query}`)
    // A later request (another page, another filter) answers for the table: this one is stale.
    if (request !== online.request) return
    if (page.devices.length === 0 && online.index > 0) {
      // The devices of this page went offline: back to the first page.
      online.cursors = [undefined]
      online.index = 0
      return await loadOnline()
    }
    online.cursors.length = online.index + 1
    if (page.next !== undefined) online.cursors.push(page.next)
    $('online-error').textContent = ''
    $('online').querySelector('tbody').replaceChildren(...page.devices.map((d) => {
      const button = el('button', 'Kick', { type: 'button', class: 'secondary', 'data-kick': d.id })
      button.addEventListener('click', () => kick(d.id))
      return row([d.id, d.nodeId, d.transport ?? '–', d.address ?? '–', time(d.connectedAt), button], { 'data-device': d.id })
    }))
    $('online-prev').disabled = online.index === 0
    $('online-next').disabled = page.next === undefined
    $('online-page-no').textContent = `page ${online.index + 1}`
  })
}

function firstOnlinePage () {
  online.cursors = [undefined]
  online.index = 0
  loadOnline()
}

$('online-node').addEventListener('change', firstOnlinePage)
$('online-limit').addEventListener('change', firstOnlinePage)
$('online-prev').addEventListener('click', () => {
  online.index = Math.max(0, online.index - 1)
  loadOnline()
})
$('online-next').addEventListener('click', () => {
  if (online.cursors[online.index + 1] === undefined) return
  online.index++
  loadOnline()
})

async function kick (id) {
  if (!window.confirm(`Kick ${id}? Its connection is closed; its token stays valid, so it may connect again.`)) return
  const out = $('online-result')
  out.className = 'error'
  out.textContent = ''
  await guarded(out, async () => {
    const kicked = await api('POST', `/v1/admin/devices/${encodeURIComponent(id)}/kick`)
    out.className = ''
    out.textContent = `Kicked ${kicked.id} on node ${kicked.nodeId}`
    await loadOnline()
  })
}

// ------------------------------------------------------------------ start

if (sessionStorage.getItem(KEY_ITEM) !== null) poll()
else showLogin()
