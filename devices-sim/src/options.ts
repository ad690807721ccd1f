// Command-line options of devices-sim: one table, parsed and validated here and nowhere else. Scenario files
// use the same names (their "options" object goes through this parser), so there is one vocabulary.

import { parseArgs as parseCommandLine } from 'node:util'
import { SimError } from './errors.ts'

export type ProvisionMode = 'admin' | 'provisioning' | 'reuse'
export type Engine = 'mqttjs' | 'light'

export interface Thresholds {
  /** Failed operations (connects, tokens, uplinks) over all attempted, 0..1. */
  readonly maxErrorRate?: number
  readonly maxLostDownlinks?: number
  readonly maxLostUplinks?: number
  readonly maxDuplicateDownlinks?: number
  readonly maxUplinkP99Ms?: number
  readonly maxDownlinkP99Ms?: number
  readonly maxBroadcastMs?: number
  readonly maxReconnectMs?: number
  /** Devices that must be connected at the end, 0..1 of --devices (default: none). */
  readonly minConnectedRatio?: number
}

export interface SimOptions {
  readonly url: string
  readonly devices: number
  readonly prefix: string
  readonly provision: ProvisionMode
  readonly adminKey: string | undefined
  readonly provisioningKey: string | undefined
  readonly groups: readonly string[]
  readonly credentials: string | undefined
  /** Connects per second, all workers together. */
  readonly ramp: number
  /** Uplinks per second per device (0: none). */
  readonly telemetryRate: number
  readonly qos: 0 | 1
  readonly payloadBytes: number
  /** Spread of the telemetry interval and the backoff, 0..1. */
  readonly jitter: number
  /** Run time after the connect phase, ms. */
  readonly duration: number
  /** Longest the connect phase may take, ms (0: derived from --devices and --ramp). */
  readonly connectTimeout: number
  readonly workers: number
  readonly sourceAddresses: readonly string[]
  readonly scenario: string | undefined
  readonly report: string | undefined
  /** Per-device detail (acknowledged uplink sequence numbers, nodes, downlink ids) in the JSON report. */
  readonly reportDevices: boolean
  /** Keep tokens in the credential cache and reuse them while valid (skips the token request). */
  readonly cacheTokens: boolean
  readonly engine: Engine
  readonly keepalive: number
  readonly clean: boolean
  readonly httpConcurrency: number
  readonly backoffBase: number
  readonly backoffMax: number
  /** Connection failures in a row after which a device asks the registry for a new token and node. */
  readonly refreshAfter: number
  readonly killNode: string | undefined
  readonly killPid: number | undefined
  readonly killCommand: string | undefined
  readonly progress: number
  readonly thresholds: Thresholds
}

/** Most devices one worker process may hold: a process may have at most 20,000 open files here. */
export const MAX_DEVICES_PER_WORKER = 18_000

export const DEFAULTS: SimOptions = {
  url: 'http://127.0.0.1:3000',
  devices: 10,
  prefix: 'sim',
  provision: 'admin',
  adminKey: undefined,
  provisioningKey: undefined,
  groups: [],
  credentials: undefined,
  ramp: 200,
  telemetryRate: 0.2,
  qos: 1,
  payloadBytes: 64,
  jitter: 0.2,
  duration: 30_000,
  connectTimeout: 0,
  workers: 0,
  sourceAddresses: [],
  scenario: undefined,
  report: undefined,
  reportDevices: false,
  cacheTokens: false,
  engine: 'mqttjs',
  keepalive: 60,
  clean: true,
  httpConcurrency: 32,
  backoffBase: 500,
  backoffMax: 15_000,
  refreshAfter: 2,
  killNode: undefined,
  killPid: undefined,
  killCommand: undefined,
  progress: 0,
  thresholds: {}
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
type Setter = (o: Mutable<SimOptions>, t: Mutable<Thresholds>, value: string, name: string) => void

interface OptionSpec {
  readonly arg: string
  readonly help: string
  readonly flag?: boolean
  readonly set: Setter
}

function usage (message: string): SimError {
  return new SimError('SIM_ERR_USAGE', message)
}

export function parseNumber (value: string, name: string, min: number, max = Number.MAX_SAFE_INTEGER, integer = false): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw usage(`--${name}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${value}"`)
  }
  return n
}

const int = (min: number, max?: number) => (value: string, name: string): number => parseNumber(value, name, min, max, true)
const num = (min: number, max?: number) => (value: string, name: string): number => parseNumber(value, name, min, max)

/** "500", "500ms", "30s", "2m", "1h" → milliseconds. */
export function parseDuration (value: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim())
  if (m === null) throw usage(`--${name}: expected a duration such as 500ms, 30s, 2m or 1h, got "${value}"`)
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h' ?? 'ms']
  return Math.round(Number(m[1]) * scale)
}

function ipv4 (s: string, name: string): number {
  const parts = s.split('.')
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw usage(`--${name}: "${s}" is not an IPv4 address`)
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0)
}

const dotted = (n: number): string => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.')

/** "127.0.0.2-127.0.0.9,127.0.0.20" → every address, in order; only 127.0.0.0/8 (the simulator stays local). */
export function parseAddressList (value: string, name = 'source-addresses'): string[] {
  const out: string[] = []
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const [from, to = from] = item.split('-') as [string, string?]
    const a = ipv4(from, name)
    const b = ipv4(to, name)
    if (b < a) throw usage(`--${name}: range "${item}" ends before it starts`)
    if (b - a > 65_535) throw usage(`--${name}: range "${item}" is too large`)
    for (let n = a; n <= b; n++) {
      if (Math.floor(n / 2 ** 24) !== 127) throw usage(`--${name}: ${dotted(n)} is not in 127.0.0.0/8`)
      out.push(dotted(n))
    }
  }
  if (out.length === 0) throw usage(`--${name}: no address given`)
  return out
}

function oneOf<T extends string> (values: readonly T[]) {
  return (value: string, name: string): T => {
    if (!(values as readonly string[]).includes(value)) throw usage(`--${name}: expected one of ${values.join(', ')}, got "${value}"`)
    return value as T
  }
}

function bool (value: string, name: string): boolean {
  if (value === 'true' || value === '') return true
  if (value === 'false') return false
  throw usage(`--${name}: expected true or false, got "${value}"`)
}

const ID = /^[A-Za-z0-9_.-]+$/

const SPECS: readonly OptionSpec[] = [
  { arg: 'url', help: 'HTTP API base URL of the platform', set: (o, _t, v) => { o.url = v.replace(/\/+$/, '') } },
  { arg: 'devices', help: 'number of simulated devices', set: (o, _t, v, n) => { o.devices = int(1, 1_000_000)(v, n) } },
  {
    arg: 'prefix',
    help: 'device id prefix (ids are <prefix>-<n>)',
    set: (o, _t, v, n) => {
      if (!ID.test(v) || v.length > 50) throw usage(`--${n}: 1 to 50 of [A-Za-z0-9_.-], got "${v}"`)
      o.prefix = v
    }
  },
  { arg: 'provision', help: 'admin | provisioning | reuse (cached credentials only)', set: (o, _t, v, n) => { o.provision = oneOf<ProvisionMode>(['admin', 'provisioning', 'reuse'])(v, n) } },
  { arg: 'admin-key', help: 'operator key (or DEVICES_SIM_ADMIN_KEY)', set: (o, _t, v) => { o.adminKey = v } },
  { arg: 'provisioning-key', help: 'fleet provisioning key (or DEVICES_SIM_PROVISIONING_KEY)', set: (o, _t, v) => { o.provisioningKey = v } },
  {
    arg: 'groups',
    help: 'comma-separated groups; device n joins group n mod count',
    set: (o, _t, v, n) => {
      const groups = v.split(',').map((g) => g.trim()).filter((g) => g !== '')
      const bad = groups.find((g) => !ID.test(g))
      if (bad !== undefined) throw usage(`--${n}: "${bad}" is not a group name ([A-Za-z0-9_.-])`)
      o.groups = groups
    }
  },
  { arg: 'credentials', help: 'credential cache file (default .devices-sim/<prefix>.json)', set: (o, _t, v) => { o.credentials = v } },
  { arg: 'ramp', help: 'connects per second, all workers together', set: (o, _t, v, n) => { o.ramp = num(0.1, 1_000_000)(v, n) } },
  { arg: 'telemetry-rate', help: 'uplinks per second per device (0: none)', set: (o, _t, v, n) => { o.telemetryRate = num(0, 10_000)(v, n) } },
  { arg: 'qos', help: 'QoS of uplinks: 0 or 1', set: (o, _t, v, n) => { o.qos = int(0, 1)(v, n) as 0 | 1 } },
  { arg: 'payload-bytes', help: 'size of each uplink payload (at least 48)', set: (o, _t, v, n) => { o.payloadBytes = int(48, 256 * 1024)(v, n) } },
  { arg: 'jitter', help: 'spread of telemetry intervals and backoff, 0..1', set: (o, _t, v, n) => { o.jitter = num(0, 1)(v, n) } },
  { arg: 'duration', help: 'run time after the connect phase (30s, 2m)', set: (o, _t, v, n) => { o.duration = parseDuration(v, n) } },
  { arg: 'connect-timeout', help: 'longest connect phase (default: from devices and ramp)', set: (o, _t, v, n) => { o.connectTimeout = parseDuration(v, n) } },
  { arg: 'workers', help: `worker processes (default: one per ${MAX_DEVICES_PER_WORKER.toLocaleString('en-US')} devices)`, set: (o, _t, v, n) => { o.workers = int(1, 64)(v, n) } },
  { arg: 'source-addresses', help: 'local addresses to connect from, e.g. 127.0.0.2-127.0.0.9', set: (o, _t, v, n) => { o.sourceAddresses = parseAddressList(v, n) } },
  { arg: 'scenario', help: 'scenario file (.json, .yaml); options given here win over it', set: (o, _t, v) => { o.scenario = v } },
  { arg: 'report', help: 'write the JSON report to this path', set: (o, _t, v) => { o.report = v } },
  { arg: 'report-devices', help: 'add per-device detail to the JSON report', flag: true, set: (o, _t, v, n) => { o.reportDevices = bool(v, n) } },
  { arg: 'cache-tokens', help: 'keep tokens in the credential cache and reuse them while valid', flag: true, set: (o, _t, v, n) => { o.cacheTokens = bool(v, n) } },
  { arg: 'engine', help: 'mqttjs (default, MQTT.js) | light (raw packets, for plain load)', set: (o, _t, v, n) => { o.engine = oneOf<Engine>(['mqttjs', 'light'])(v, n) } },
  { arg: 'keepalive', help: 'MQTT keepalive, seconds', set: (o, _t, v, n) => { o.keepalive = int(0, 65_535)(v, n) } },
  { arg: 'clean', help: 'clean session (true) or persistent (false)', set: (o, _t, v, n) => { o.clean = bool(v, n) } },
  { arg: 'http-concurrency', help: 'HTTP requests in flight per worker', set: (o, _t, v, n) => { o.httpConcurrency = int(1, 1000)(v, n) } },
  { arg: 'backoff-base', help: 'first reconnect delay (doubles per failure)', set: (o, _t, v, n) => { o.backoffBase = parseDuration(v, n) } },
  { arg: 'backoff-max', help: 'longest reconnect delay', set: (o, _t, v, n) => { o.backoffMax = parseDuration(v, n) } },
  { arg: 'refresh-after', help: 'connection failures in a row before a new token and node', set: (o, _t, v, n) => { o.refreshAfter = int(1, 1000)(v, n) } },
  { arg: 'kill-node', help: 'node-failure: id of the node to kill (default: the one with the most devices)', set: (o, _t, v) => { o.killNode = v } },
  { arg: 'kill-pid', help: 'node-failure: process to SIGKILL', set: (o, _t, v, n) => { o.killPid = int(2, 2 ** 31)(v, n) } },
  { arg: 'kill-command', help: 'node-failure: shell command that kills a node ({nodeId} is replaced)', set: (o, _t, v) => { o.killCommand = v } },
  { arg: 'progress', help: 'progress line period (default: live on a TTY, 5s otherwise)', set: (o, _t, v, n) => { o.progress = parseDuration(v, n) } },
  { arg: 'max-error-rate', help: 'threshold: failed operations / attempted, 0..1', set: (_o, t, v, n) => { t.maxErrorRate = num(0, 1)(v, n) } },
  { arg: 'max-lost-downlinks', help: 'threshold: downlinks never received', set: (_o, t, v, n) => { t.maxLostDownlinks = int(0)(v, n) } },
  { arg: 'max-lost-uplinks', help: 'threshold: QoS 1 uplinks without PUBACK', set: (_o, t, v, n) => { t.maxLostUplinks = int(0)(v, n) } },
  { arg: 'max-duplicate-downlinks', help: 'threshold: downlink ids received twice over MQTT', set: (_o, t, v, n) => { t.maxDuplicateDownlinks = int(0)(v, n) } },
  { arg: 'max-uplink-p99', help: 'threshold: uplink PUBACK latency p99, ms', set: (_o, t, v, n) => { t.maxUplinkP99Ms = num(0)(v, n) } },
  { arg: 'max-downlink-p99', help: 'threshold: downlink latency p99, ms', set: (_o, t, v, n) => { t.maxDownlinkP99Ms = num(0)(v, n) } },
  { arg: 'max-broadcast-ms', help: 'threshold: time until every device got a broadcast, ms', set: (_o, t, v, n) => { t.maxBroadcastMs = num(0)(v, n) } },
  { arg: 'max-reconnect-ms', help: 'threshold: time until every device is back after a node failure, ms', set: (_o, t, v, n) => { t.maxReconnectMs = num(0)(v, n) } },
  { arg: 'min-connected', help: 'threshold: share of devices connected at the end, 0..1', set: (_o, t, v, n) => { t.minConnectedRatio = num(0, 1)(v, n) } }
]

export interface ParsedArgs {
  /** Only what the command line set (scenario options are merged under it). */
  readonly given: Partial<SimOptions>
  readonly help: boolean
}

const PARSE_OPTIONS = Object.fromEntries([
  ['help', { type: 'boolean', short: 'h' }],
  ...SPECS.map((s) => [s.arg, { type: s.flag === true ? 'boolean' : 'string' }])
]) as Record<string, { type: 'boolean' | 'string', short?: string }>

/** node:util's parse errors in this tool's words (the option table's names, SIM_ERR_USAGE). */
function usageFromParseError (err: Error & { code?: string }, argv: readonly string[]): SimError {
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = /'(-[^']*)'/.exec(err.message)?.[1] ?? ''
      return usage(`unknown option ${name} (see --help)`)
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const token = argv.find((a) => !a.startsWith('-')) ?? ''
      return usage(`unexpected argument "${token}" (options start with --; see --help)`)
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = /'--([^' ]+)/.exec(err.message)?.[1] ?? ''
      const spec = SPECS.find((s) => s.arg === name)
      return usage(spec?.flag === true ? `--${name} takes no value` : `--${name} needs a value`)
    }
    default:
      return usage(err.message)
  }
}

/** Parses `--name value` and `--name=value` (node:util parseArgs); flags take no value. Unknown or malformed options throw SIM_ERR_USAGE. */
export function parseArgs (argv: readonly string[]): ParsedArgs {
  let parsed: ReturnType<typeof parseCommandLine>
  try {
    parsed = parseCommandLine({ args: [...argv], options: PARSE_OPTIONS, strict: true, allowPositionals: false, tokens: true })
  } catch (err) {
    throw usageFromParseError(err as Error & { code?: string }, argv)
  }
  const o: Partial<Mutable<SimOptions>> = {}
  const t: Mutable<Thresholds> = {}
  let help = false
  // Tokens, not values: an option given twice is applied twice, the last one winning, as the table's setters expect.
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option') continue
    if (token.name === 'help') { help = true; continue }
    const spec = SPECS.find((s) => s.arg === token.name) as OptionSpec
    if (spec.flag !== true && token.value === undefined) throw usage(`--${token.name} needs a value`)
    spec.set(o as Mutable<SimOptions>, t, token.value ?? '', token.name)
  }
  if (Object.keys(t).length > 0) o.thresholds = t
  return { given: o, help }
}

/** Scenario "options" ({"devices": 100, "telemetry-rate": 2}) through the same parser as the command line. */
export function parseOptionObject (obj: Readonly<Record<string, unknown>>): Partial<SimOptions> {
  const argv: string[] = []
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean' && !Array.isArray(v))) {
      throw usage(`option ${k}: expected a string, number, boolean or list`)
    }
    const spec = SPECS.find((s) => s.arg === k)
    if (spec?.flag === true) {
      // A flag is on when named; false (the default) leaves it out.
      if (v !== false && v !== 'false') { bool(String(v), k); argv.push(`--${k}`) }
      continue
    }
    argv.push(`--${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
  }
  return parseArgs(argv).given
}

/** Defaults, then the scenario's options, then the command line's; thresholds merge key by key. */
export function resolveOptions (fromScenario: Partial<SimOptions>, fromArgs: Partial<SimOptions>, env: { adminKey?: string, provisioningKey?: string } = {}): SimOptions {
  const merged: Mutable<SimOptions> = {
    ...DEFAULTS,
    ...fromScenario,
    ...fromArgs,
    thresholds: { ...DEFAULTS.thresholds, ...fromScenario.thresholds, ...fromArgs.thresholds }
  }
  merged.adminKey ??= env.adminKey
  merged.provisioningKey ??= env.provisioningKey
  if (merged.workers === 0) merged.workers = Math.max(1, Math.ceil(merged.devices / 15_000))
  if (merged.devices / merged.workers > MAX_DEVICES_PER_WORKER) {
    throw usage(`--workers ${merged.workers}: at most ${MAX_DEVICES_PER_WORKER} devices per worker process (one process may hold 20,000 open files); use --workers ${Math.ceil(merged.devices / MAX_DEVICES_PER_WORKER)} or more`)
  }
  if (merged.workers > merged.devices) merged.workers = merged.devices
  if (merged.provision === 'admin' && merged.adminKey === undefined) throw usage('--provision admin needs --admin-key (or DEVICES_SIM_ADMIN_KEY)')
  if (merged.provision === 'provisioning' && merged.provisioningKey === undefined) throw usage('--provision provisioning needs --provisioning-key (or DEVICES_SIM_PROVISIONING_KEY)')
  if (merged.backoffMax < merged.backoffBase) throw usage('--backoff-max must be at least --backoff-base')
  try {
    const u = new URL(merged.url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http')
  } catch {
    throw usage(`--url: "${merged.url}" is not an http(s) URL`)
  }
  if (merged.connectTimeout === 0) merged.connectTimeout = Math.round(30_000 + 3000 * merged.devices / merged.ramp)
  merged.credentials ??= `.devices-sim/${merged.prefix}.json`
  return merged
}

export function helpText (): string {
  const width = Math.max(...SPECS.map((s) => s.arg.length + (s.flag === true ? 0 : 8)))
  const lines = SPECS.map((s) => `  --${(s.arg + (s.flag === true ? '' : ' <value>')).padEnd(width)}  ${s.help}`)
  return [
    'devices-sim: plays a fleet of devices against a Pushline platform (HTTP for tokens, MQTT for the rest).',
    '',
    'Usage: npx devices-sim [options]            e.g. npx devices-sim --url http://127.0.0.1:3000 --admin-key K --devices 1000',
    '       npm run sim -- --scenario devices-sim/scenarios/connect-storm.json --admin-key K',
    '       npx devices-sim import --file ids.csv --out secrets.ndjson --admin-key K   (bulk onboarding; import --help)',
    '',
    'Options:',
    '  --help                    this text',
    ...lines,
    '',
    'Exit codes: 0 all thresholds held, 1 a threshold was exceeded or the run failed, 2 bad options or scenario.',
    'Scenario files and the report format: docs/devices-sim.md.'
  ].join('\n')
}
