import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load-config.ts'
import { settings } from '../../src/config/settings.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const compose = parse(readFileSync(`${root}docker-compose.yml`, 'utf8'), { merge: true }) as Compose
const haproxyCfg = readFileSync(`${root}deploy/haproxy.cfg`, 'utf8')
const knownNames = new Set(Object.values(settings).map((s) => s.env))

interface Service {
  readonly environment?: Record<string, unknown> | string[]
  readonly ports?: Array<string | { target: number, published?: string | number }>
  readonly volumes?: Array<string | { type?: string, source?: string }>
  readonly command?: string | string[]
}
interface Compose {
  readonly services: Record<string, Service>
  readonly volumes?: Record<string, unknown>
}

function environment (s: Service): Record<string, string> {
  const env = s.environment ?? {}
  const entries = Array.isArray(env)
    ? env.map((e) => { const i = e.indexOf('='); return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)] })
    : Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)])
  return Object.fromEntries(entries)
}

const pushlineServices = Object.entries(compose.services)
  .filter(([, s]) => Object.keys(environment(s)).some((k) => k.startsWith('PUSHLINE_')))
const nodes = ['node1', 'node2', 'node3']

function service (name: string): Service {
  const s = compose.services[name]
  assert.ok(s !== undefined, `service ${name} is missing`)
  return s
}

function env (name: string): Record<string, string> {
  return environment(service(name))
}

/** Container ports a service publishes on the host, as "host:container" pairs. */
function publishedPorts (s: Service): Array<{ host: number, container: number }> {
  return (s.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { host: Number(p.published ?? p.target), container: p.target }
    const parts = p.split('/')[0]?.split(':') ?? []
    const container = Number(parts[parts.length - 1])
    const host = parts.length >= 2 ? Number(parts[parts.length - 2]) : container
    return { host, container }
  })
}

/** Replaces compose interpolation by what loadConfig would see at run time. */
function interpolate (value: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (_m, _name: string, op: string | undefined, arg: string | undefined) => {
    if (op === ':-' || op === '-') return arg ?? ''
    if (op === ':?' || op === '?') return 'x'.repeat(20)
    return ''
  })
}

test('docker-compose.yml defines the Pushline services', () => {
  for (const name of [...nodes, 'api', 'redis', 'kafka', 'haproxy']) service(name)
  assert.deepEqual(pushlineServices.map(([n]) => n).sort(), ['api', ...nodes].sort())
})

test('every PUSHLINE_ variable in docker-compose.yml is a known setting', () => {
  for (const [name, s] of pushlineServices) {
    for (const key of Object.keys(environment(s))) {
      if (!key.startsWith('PUSHLINE_')) continue
      assert.ok(knownNames.has(key), `${name}: ${key} is not in src/config/settings.ts`)
    }
  }
})

test('the three broker nodes have distinct node ids and the broker role', () => {
  const ids = nodes.map((n) => env(n).PUSHLINE_NODE_ID)
  for (const [i, n] of nodes.entries()) {
    assert.equal(env(n).PUSHLINE_ROLE, 'broker', n)
    assert.ok(ids[i] !== undefined && ids[i] !== '', `${n} has no PUSHLINE_NODE_ID`)
  }
  assert.equal(new Set(ids).size, nodes.length, `node ids must differ: ${ids.join(', ')}`)
})

test('the api service has the api role and publishes its HTTP port', () => {
  const e = env('api')
  assert.equal(e.PUSHLINE_ROLE, 'api')
  const httpPort = Number(e.PUSHLINE_HTTP_PORT ?? settings.httpPort.defaultText)
  const ports = publishedPorts(service('api'))
  assert.ok(ports.some((p) => p.container === httpPort && p.host === httpPort), `api must publish ${httpPort}: ${JSON.stringify(ports)}`)
})

test('Redis runs with an unlimited pubsub output buffer and append-only persistence', () => {
  const command = service('redis').command
  const argv = Array.isArray(command) ? command.map(String) : String(command).split(/\s+/)
  const joined = argv.join(' ')
  const i = argv.indexOf('--client-output-buffer-limit')
  assert.ok(i >= 0, `no --client-output-buffer-limit in ${joined}`)
  const limit = argv.slice(i + 1).join(' ')
  assert.ok(limit.startsWith('pubsub 0 0 0'), `pubsub limit must be 0 0 0: ${joined}`)
  const a = argv.indexOf('--appendonly')
  assert.ok(a >= 0 && argv[a + 1] === 'yes', `appendonly yes missing: ${joined}`)
})

test('HAProxy publishes the MQTT and WebSocket ports', () => {
  const ports = publishedPorts(service('haproxy'))
  for (const p of [1883, 8083]) {
    assert.ok(ports.some((x) => x.host === p && x.container === p), `haproxy must publish ${p}: ${JSON.stringify(ports)}`)
  }
})

/** Backend sections of haproxy.cfg: servers ("server name host:port") and health-check ports ("check port N"). */
function backends (cfg: string): Map<string, { servers: Array<{ name: string, host: string, port: number }>, checkPorts: number[] }> {
  const out = new Map<string, { servers: Array<{ name: string, host: string, port: number }>, checkPorts: number[] }>()
  let current: { servers: Array<{ name: string, host: string, port: number }>, checkPorts: number[] } | undefined
  for (const raw of cfg.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim()
    const section = /^(global|defaults|frontend|backend|listen|resolvers|peers|userlist)\b\s*(\S*)/.exec(line)
    if (section !== null) {
      current = section[1] === 'backend' ? { servers: [], checkPorts: [] } : undefined
      if (current !== undefined) out.set(section[2] ?? '', current)
      continue
    }
    if (current === undefined) continue
    const server = /^server\s+(\S+)\s+([^\s:]+):(\d+)/.exec(line)
    if (server !== null) current.servers.push({ name: server[1] as string, host: server[2] as string, port: Number(server[3]) })
    for (const m of line.matchAll(/\bcheck\s+port\s+(\d+)/g)) current.checkPorts.push(Number(m[1]))
  }
  return out
}

test('HAProxy backends send MQTT and WebSocket traffic to node1..3 on their configured ports and check their HTTP port', () => {
  const b = backends(haproxyCfg)
  const byPort = (envName: 'PUSHLINE_MQTT_PORT' | 'PUSHLINE_WS_PORT'): Map<string, number> =>
    new Map(nodes.map((n) => [n, Number(env(n)[envName])]))
  const expectations = [
    { envName: 'PUSHLINE_MQTT_PORT' as const },
    { envName: 'PUSHLINE_WS_PORT' as const }
  ]
  for (const { envName } of expectations) {
    const ports = byPort(envName)
    // The backend whose servers are exactly node1..3 on these ports.
    const match = [...b.entries()].find(([, be]) =>
      be.servers.length === nodes.length &&
      nodes.every((n) => be.servers.some((s) => s.host === n && s.port === ports.get(n))))
    assert.ok(match !== undefined, `no backend routes to node1..3 on ${envName} (${[...ports.values()].join(', ')}): ${JSON.stringify([...b.entries()])}`)
    const [name, be] = match
    assert.ok(be.checkPorts.length > 0, `backend ${name} has no "check port"`)
    for (const p of be.checkPorts) {
      assert.ok(nodes.every((n) => Number(env(n).PUSHLINE_HTTP_PORT) === p), `backend ${name} checks port ${p}, nodes serve HTTP on ${nodes.map((n) => env(n).PUSHLINE_HTTP_PORT).join(', ')}`)
    }
  }
  // Nothing in haproxy.cfg points at a host that is not a node.
  for (const [name, be] of b) {
    for (const s of be.servers) assert.ok(nodes.includes(s.host), `backend ${name} server ${s.name} points at ${s.host}`)
  }
})

test('every named volume a service mounts is declared at top level', () => {
  const declared = new Set(Object.keys(compose.volumes ?? {}))
  let named = 0
  for (const [name, s] of Object.entries(compose.services)) {
    for (const v of s.volumes ?? []) {
      let source: string | undefined
      if (typeof v === 'string') {
        const parts = v.split(':')
        source = parts.length > 1 ? parts[0] : undefined // "/path" alone is an anonymous volume
      } else if (v.type === undefined || v.type === 'volume') {
        source = v.source
      }
      if (source === undefined || source === '' || /^[./~$]/.test(source)) continue // bind mounts
      named++
      assert.ok(declared.has(source), `${name} mounts volume ${source}, which is not declared under volumes:`)
    }
  }
  assert.ok(named > 0, 'the check found named volumes to verify')
})

test('every variable interpolated into a service environment is a known PUSHLINE_ setting', () => {
  let seen = 0
  for (const [name, s] of Object.entries(compose.services)) {
    for (const [key, value] of Object.entries(environment(s))) {
      for (const m of value.matchAll(/\$\{([^}:?-]+)/g)) {
        seen++
        const ref = m[1] as string
        assert.ok(ref.startsWith('PUSHLINE_') && knownNames.has(ref), `${name}.${key} interpolates unknown variable ${ref}`)
      }
    }
  }
  assert.ok(seen > 0, 'the check found interpolations to verify')
})

test('loadConfig accepts the environment of every Pushline service', () => {
  for (const [name, s] of pushlineServices) {
    const e = Object.fromEntries(Object.entries(environment(s)).map(([k, v]) => [k, interpolate(v)]))
    let config
    try {
      config = loadConfig(e)
    } catch (err) {
      assert.fail(`${name}: ${(err as Error).message}`)
    }
    assert.equal(config.mode, 'cluster', name)
    assert.ok(config.kafkaBrokers !== undefined && config.kafkaBrokers.length > 0, `${name} has Kafka`)
    if (e.PUSHLINE_NODE_ID !== undefined) assert.equal(config.nodeId, e.PUSHLINE_NODE_ID)
  }
})

test('the interpolation helper of this test follows compose rules', () => {
  const v = (body: string): string => '$' + '{' + body + '}'
  assert.equal(interpolate(`${v('A:-x')}-${v('B:?msg here')}-${v('C')}`), `x-${'x'.repeat(20)}-`)
  assert.equal(interpolate(v('A:-')), '')
  assert.equal(interpolate(`a${v('A-b')}c`), 'abc')
  assert.equal(interpolate('plain'), 'plain')
})

interface ScrapeConfig {
  readonly job_name: string
  readonly metrics_path?: string
  readonly scheme?: string
  readonly static_configs?: Array<{ readonly targets?: string[] }>
}

/** Mounts of a service as [source, target] pairs (short syntax). */
function mounts (s: Service): Array<[string, string]> {
  return (s.volumes ?? []).flatMap((v) => typeof v === 'string' ? [v.split(':').slice(0, 2) as [string, string]] : [])
}

test('Prometheus mounts deploy/prometheus.yml as its configuration and keeps its data in a volume', () => {
  const prometheus = service('prometheus')
  const command = Array.isArray(prometheus.command) ? prometheus.command.join(' ') : String(prometheus.command)
  const configPath = /--config\.file=(\S+)/.exec(command)?.[1]
  assert.ok(configPath !== undefined, `prometheus has no --config.file: ${command}`)
  assert.ok(mounts(prometheus).some(([source, target]) => source === './deploy/prometheus.yml' && target === configPath), `deploy/prometheus.yml is not mounted at ${configPath}`)
  const dataPath = /--storage\.tsdb\.path=(\S+)/.exec(command)?.[1]
  assert.ok(mounts(prometheus).some(([source, target]) => compose.volumes?.[source] !== undefined && target === dataPath), `no named volume at ${dataPath}`)
})

test('Prometheus scrapes /metrics of every Pushline service on its HTTP port', () => {
  const config = parse(readFileSync(`${root}deploy/prometheus.yml`, 'utf8')) as { scrape_configs?: ScrapeConfig[] }
  const scraped = new Set<string>()
  for (const job of config.scrape_configs ?? []) {
    if ((job.metrics_path ?? '/metrics') !== '/metrics' || (job.scheme ?? 'http') !== 'http') continue
    for (const sc of job.static_configs ?? []) for (const target of sc.targets ?? []) scraped.add(target)
  }
  assert.ok(pushlineServices.length >= 4, `expected the nodes and the API, found ${pushlineServices.map(([n]) => n).join(', ')}`)
  for (const [name, s] of pushlineServices) {
    const httpPort = environment(s).PUSHLINE_HTTP_PORT ?? '3000'
    assert.ok(scraped.has(`${name}:${httpPort}`), `${name}:${httpPort} is not scraped (targets: ${[...scraped].join(', ')})`)
  }
  // And nothing is scraped that is not a service of this file (a typo would scrape nothing, silently).
  for (const target of scraped) {
    const host = target.split(':')[0] as string
    assert.ok(host === 'localhost' || compose.services[host] !== undefined, `scrape target ${target} is no service`)
  }
})
