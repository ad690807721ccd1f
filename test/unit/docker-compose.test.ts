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
  readonly hostname?: string
  readonly depends_on?: Record<string, { condition?: string }> | string[]
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
const redisNodes = ['redis-1', 'redis-2']
const sentinels = ['sentinel-1', 'sentinel-2', 'sentinel-3']
const kafkas = ['kafka-1', 'kafka-2', 'kafka-3']

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
  for (const name of [...nodes, 'api', ...redisNodes, ...sentinels, ...kafkas, 'haproxy']) service(name)
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

function argv (s: Service): string[] {
  const command = s.command
  return Array.isArray(command) ? command.map(String) : String(command).split(/\s+/)
}

test('both Redis data nodes run with an unlimited pubsub output buffer and append-only persistence', () => {
  for (const name of redisNodes) {
    const args = argv(service(name))
    const joined = args.join(' ')
    const i = args.indexOf('--client-output-buffer-limit')
    assert.ok(i >= 0, `${name}: no --client-output-buffer-limit in ${joined}`)
    assert.ok(args.slice(i + 1).join(' ').startsWith('pubsub 0 0 0'), `${name}: pubsub limit must be 0 0 0: ${joined}`)
    const a = args.indexOf('--appendonly')
    assert.ok(a >= 0 && args[a + 1] === 'yes', `${name}: appendonly yes missing: ${joined}`)
  }
})

test('Redis is a primary with one replica of it, watched by three Sentinels with quorum 2 that every Pushline service asks', () => {
  const replicaOf = (name: string): string | undefined => {
    const args = argv(service(name))
    const i = args.indexOf('--replicaof')
    return i < 0 ? undefined : `${args[i + 1] ?? ''}:${args[i + 2] ?? ''}`
  }
  assert.equal(replicaOf('redis-1'), undefined, 'redis-1 starts as the primary')
  assert.equal(replicaOf('redis-2'), 'redis-1:6379')
  for (const name of sentinels) {
    const script = argv(service(name)).join('\n')
    const monitor = /sentinel monitor (\S+) (\S+) (\d+) (\d+)/.exec(script)
    assert.ok(monitor !== null, `${name} monitors nothing: ${script}`)
    assert.deepEqual(monitor.slice(1), ['pushline', 'redis-1', '6379', '2'], `${name}: monitor the primary with quorum 2 of 3`)
    assert.match(script, /redis-sentinel \S+/, `${name} runs redis-sentinel`)
    assert.match(script, /sentinel resolve-hostnames yes/, `${name}: the compose network's names must resolve`)
  }
  const wanted = sentinels.map((n) => `${n}:26379`).sort().join(',')
  for (const [name, s] of pushlineServices) {
    const e = environment(s)
    assert.equal(e.PUSHLINE_REDIS_URL, undefined, `${name}: the Sentinels, not one fixed server`)
    assert.equal((e.PUSHLINE_REDIS_SENTINELS ?? '').split(',').sort().join(','), wanted, name)
    assert.equal(e.PUSHLINE_REDIS_SENTINEL_MASTER, 'pushline', name)
    const deps = s.depends_on ?? {}
    for (const dep of [...sentinels, ...kafkas, 'kafka-init']) assert.ok(Array.isArray(deps) ? deps.includes(dep) : deps[dep] !== undefined, `${name} does not wait for ${dep}`)
  }
})

test('Kafka is three KRaft brokers of one cluster: internal and Pushline topics with 3 replicas and min.insync.replicas 2', () => {
  const envs = kafkas.map((k) => env(k))
  assert.deepEqual(envs.map((e) => e.KAFKA_NODE_ID), ['1', '2', '3'])
  assert.equal(new Set(envs.map((e) => e.CLUSTER_ID)).size, 1, 'one cluster id')
  assert.match(envs[0]?.CLUSTER_ID ?? '', /^[A-Za-z0-9_-]{22}$/, 'a cluster id is 16 bytes in base64url')
  for (const [i, e] of envs.entries()) {
    assert.equal(e.KAFKA_CONTROLLER_QUORUM_VOTERS, '1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093', kafkas[i])
    assert.equal(e.KAFKA_ADVERTISED_LISTENERS, `PLAINTEXT://${kafkas[i] as string}:9092`)
    assert.equal(e.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, '3')
    assert.equal(e.KAFKA_MIN_INSYNC_REPLICAS, '2')
    assert.equal(e.KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE, 'false', 'an out-of-sync replica must never become leader')
  }
  const init = argv(service('kafka-init')).join(' ')
  assert.match(init, /--replication-factor 3/)
  assert.match(init, /--config min\.insync\.replicas=2/)
  for (const [name, s] of pushlineServices) {
    assert.equal(environment(s).PUSHLINE_KAFKA_BROKERS, kafkas.map((k) => `${k}:9092`).join(','), name)
  }
})

test('the .env example in the header gives operator keys the api accepts', () => {
  const text = readFileSync(`${root}docker-compose.yml`, 'utf8')
  const line = /^#\s+echo "?'?PUSHLINE_ADMIN_KEYS=(.*?)"?'? > \.env/m.exec(text)
  assert.ok(line !== null, 'the header shows how to write .env')
  // $(openssl rand -hex 16) prints 32 hex characters.
  const key = (line[1] as string).replace('$(openssl rand -hex 16)', 'f'.repeat(32))
  const e = Object.fromEntries(Object.entries(env('api')).map(([k, v]) => [k, interpolate(v)]))
  assert.doesNotThrow(() => loadConfig({ ...e, PUSHLINE_ADMIN_KEYS: key }), `the example key ${line[1] as string} is refused`)
})

test('the stop grace period covers the platform\'s own shutdown grace', () => {
  const graceMs = Number(settings.shutdownGraceMs.defaultText)
  for (const name of [...nodes, 'api']) {
    const s = compose.services[name] as Service & { stop_grace_period?: string }
    const m = /^(\d+)s$/.exec(s.stop_grace_period ?? '')
    assert.ok(m !== null, `${name} has no stop_grace_period in seconds`)
    assert.ok(Number(m[1]) * 1000 > graceMs, `${name}: ${s.stop_grace_period ?? ''} does not exceed ${graceMs} ms`)
  }
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
