// Every setting the platform reads, in one table: name, default, parser and the line docs/configuration.md shows.
// The config loader, the table in docs/configuration.md and the docker-compose check all read this table.

export type Role = 'all' | 'broker' | 'api'
export type FsyncPolicy = 'always' | 'interval' | 'never'
export type AclDenyAction = 'drop' | 'disconnect'
export type KafkaCompression = 'gzip' | 'snappy' | 'none'
export type AssignmentStrategy = 'least-connections' | 'weighted' | 'consistent-hash' | 'round-robin'
export type ClientIdField = 'cn' | 'san-dns'
/** A receipt state, as the crash seam of the receipts stream names it. */
export type CrashPoint = 'queued' | 'sent' | 'delivered' | 'acked' | 'expired' | 'failed'

type Parser<T> = (raw: string) => T

export interface Setting<T> {
  readonly env: string
  readonly doc: string
  /** Shown in docs/configuration.md; undefined means "unset". */
  readonly defaultText: string
  readonly parse: Parser<T>
  /** Value when the variable is unset or empty. */
  readonly fallback: () => T
}

function setting<T> (env: string, defaultText: string, fallback: () => T, parse: Parser<T>, doc: string): Setting<T> {
  return { env, doc, defaultText, parse, fallback }
}

export class SettingValueError extends Error {}

export function integer (min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new SettingValueError(`must be an integer, got "${raw}"`)
    const n = Number(raw)
    if (n < min || n > max) throw new SettingValueError(`must be between ${min} and ${max}, got ${n}`)
    return n
  }
}

function oneOf<T extends string> (...values: T[]): Parser<T> {
  return (raw) => {
    if (!(values as string[]).includes(raw)) throw new SettingValueError(`must be one of ${values.join(', ')}, got "${raw}"`)
    return raw as T
  }
}

function boolean (raw: string): boolean {
  const v = raw.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(v)) return true
  if (['false', '0', 'no', 'off'].includes(v)) return false
  throw new SettingValueError(`must be true or false, got "${raw}"`)
}

function text (raw: string): string {
  return raw.trim()
}

function list (raw: string): string[] {
  return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

function redisUrl (raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new SettingValueError(`must be a redis:// or rediss:// URL, got "${raw}"`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new SettingValueError(`must be a redis:// or rediss:// URL, got "${raw}"`)
  return raw
}

function hostPorts (raw: string): string[] {
  const items = list(raw)
  if (items.length === 0) throw new SettingValueError('must list at least one host:port')
  for (const item of items) {
    const m = /^[A-Za-z0-9.\-_[\]:]+:(\d{1,5})$/.exec(item)
    if (m === null) throw new SettingValueError(`"${item}" is not host:port`)
    const port = Number(m[1])
    if (port < 1 || port > 65535) throw new SettingValueError(`"${item}" has a port outside 1..65535`)
  }
  return items
}

function sentinelMaster (raw: string): string {
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(raw.trim())) throw new SettingValueError(`must be 1 to 64 characters of [A-Za-z0-9_.:-], got "${raw}"`)
  return raw.trim()
}

/** Passwords are taken as they are (spaces included) and never echoed in errors. */
function secret (raw: string): string {
  return raw
}

function keys (minLength: number): Parser<string[]> {
  return (raw) => {
    const items = list(raw)
    if (items.length === 0) throw new SettingValueError('must hold at least one key')
    for (const k of items) {
      if (k.length < minLength) throw new SettingValueError(`each key must have at least ${minLength} characters`)
    }
    return items
  }
}

function nodeId (raw: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) throw new SettingValueError(`must be 1 to 64 characters of [A-Za-z0-9_.-], got "${raw}"`)
  return raw
}

function topicName (raw: string): string {
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(raw)) throw new SettingValueError(`is not a valid Kafka topic name: "${raw}"`)
  return raw
}

const port = integer(0, 65535)
const none = <T>(): T | undefined => undefined

export const settings = {
  role: setting<Role>('PUSHLINE_ROLE', 'all', () => 'all', oneOf('all', 'broker', 'api'),
    '`all` (broker and HTTP API in one process), `broker` or `api`'),
  nodeId: setting<string | undefined>('PUSHLINE_NODE_ID', 'random per start', none, nodeId,
    'node id, unique per running process'),
  host: setting('PUSHLINE_HOST', '0.0.0.0', () => '0.0.0.0', text,
    'address the MQTT, WebSocket and HTTP listeners bind to'),
  publicHost: setting('PUSHLINE_PUBLIC_HOST', 'localhost', () => 'localhost', text,
    'host name given to devices in token responses (the address they connect to)'),
  mqttPort: setting('PUSHLINE_MQTT_PORT', '1883', () => 1883, port, 'MQTT over TCP (0 picks a free port)'),
  wsPort: setting('PUSHLINE_WS_PORT', '8083', () => 8083, port, 'MQTT over WebSocket, path `/mqtt` (0 picks a free port)'),
  httpPort: setting('PUSHLINE_HTTP_PORT', '3000', () => 3000, port, 'registry and admin API, health and metrics (0 picks a free port)'),
  tlsCertFile: setting<string | undefined>('PUSHLINE_TLS_CERT_FILE', 'unset: no TLS listeners', none, text,
    'PEM certificate (chain) for MQTT over TLS and WebSocket over TLS; needs `PUSHLINE_TLS_KEY_FILE`'),
  tlsKeyFile: setting<string | undefined>('PUSHLINE_TLS_KEY_FILE', 'unset', none, text,
    'PEM private key of that certificate'),
  tlsCaFile: setting<string | undefined>('PUSHLINE_TLS_CA_FILE', 'unset', none, text,
    'optional PEM CA certificates sent with the chain (intermediates)'),
  tlsClientCaFile: setting<string | undefined>('PUSHLINE_TLS_CLIENT_CA_FILE', 'unset: no client certificates', none, text,
    'PEM CA bundle for device client certificates on the TLS listeners (asked for, not required): a device presenting a valid certificate it signed, whose device id is registered and enabled, connects without a token'),
  tlsClientCrlFile: setting<string | undefined>('PUSHLINE_TLS_CLIENT_CRL_FILE', 'unset', none, text,
    'PEM certificate revocation list(s) checked for client certificates: one current CRL of every CA in a device\'s chain; needs `PUSHLINE_TLS_CLIENT_CA_FILE`'),
  tlsClientIdField: setting<ClientIdField>('PUSHLINE_TLS_CLIENT_ID_FIELD', 'cn', () => 'cn', oneOf('cn', 'san-dns'),
    'where a client certificate names its device id: `cn` (the subject common name) or `san-dns` (the subject alternative name of type DNS); exactly one must be present'),
  mqttsPort: setting('PUSHLINE_MQTTS_PORT', '8883', () => 8883, port, 'MQTT over TLS, when a certificate is configured (0 picks a free port)'),
  wssPort: setting('PUSHLINE_WSS_PORT', '8084', () => 8084, port, 'MQTT over WebSocket over TLS, path `/mqtt`, when a certificate is configured (0 picks a free port)'),
  redisUrl: setting<string | undefined>('PUSHLINE_REDIS_URL', 'unset: in memory', none, redisUrl,
    'Redis for every shared store (cluster mode)'),
  redisSentinels: setting<string[] | undefined>('PUSHLINE_REDIS_SENTINELS', 'unset', none, hostPorts,
    'comma-separated `host:port` of Redis Sentinels, instead of `PUSHLINE_REDIS_URL` (never both): every connection asks them for the primary and follows a failover'),
  redisSentinelMaster: setting<string | undefined>('PUSHLINE_REDIS_SENTINEL_MASTER', 'unset', none, sentinelMaster,
    'the primary\'s name the Sentinels monitor; required with `PUSHLINE_REDIS_SENTINELS`'),
  redisPassword: setting<string | undefined>('PUSHLINE_REDIS_PASSWORD', 'unset', none, secret,
    'AUTH password of the Redis data nodes (with `PUSHLINE_REDIS_URL` or the Sentinels; overrides a password in the URL)'),
  redisSentinelPassword: setting<string | undefined>('PUSHLINE_REDIS_SENTINEL_PASSWORD', 'unset', none, secret,
    'AUTH password of the Sentinels'),
  redisWaitReplicas: setting('PUSHLINE_REDIS_WAIT_REPLICAS', '1', () => 1, integer(0, 16),
    'before a push answers 202 and a device creation, deletion, disabling, secret rotation or revocation answers, Redis replicas that must have the writes (`WAIT`); only replicas the primary has connected are waited for, none without replicas; `0`: never wait'),
  redisWaitTimeoutMs: setting('PUSHLINE_REDIS_WAIT_TIMEOUT_MS', '1000', () => 1000, integer(1, 60_000),
    'longest that wait; on timeout the answer still goes out (the write is on the primary), the timeout is logged and counted'),
  redisCommandTimeoutMs: setting('PUSHLINE_REDIS_COMMAND_TIMEOUT_MS', '2000', () => 2000, integer(0, 600_000),
    'a Redis command not answered by then fails (the caller answers "unavailable") instead of waiting through an outage; `0`: no timeout. The cluster transport keeps its own longer ones'),
  redisPrefix: setting('PUSHLINE_REDIS_PREFIX', 'pushline:', () => 'pushline:', (raw) => {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(raw)) throw new SettingValueError(`must be 1 to 64 characters of [A-Za-z0-9_.:-], got "${raw}"`)
    return raw
  }, 'prefix of every key and pub/sub channel Pushline uses in Redis (aedes sessions under `{prefix}aedes:`, aedes routing under `{prefix}mq:`); deployments with different prefixes can share one Redis'),
  kafkaBrokers: setting<string[] | undefined>('PUSHLINE_KAFKA_BROKERS', 'unset: spool only', none, hostPorts,
    'comma-separated Kafka bootstrap servers'),
  kafkaTelemetryTopic: setting('PUSHLINE_KAFKA_TELEMETRY_TOPIC', 'iot.telemetry', () => 'iot.telemetry', topicName,
    'Kafka topic for uplinks'),
  kafkaPresenceTopic: setting('PUSHLINE_KAFKA_PRESENCE_TOPIC', 'iot.presence', () => 'iot.presence', topicName,
    'Kafka topic for presence events'),
  kafkaReceiptsTopic: setting('PUSHLINE_KAFKA_RECEIPTS_TOPIC', 'iot.receipts', () => 'iot.receipts', topicName,
    'Kafka topic for receipt records (one per receipt transition)'),
  kafkaReceiptsPartitions: setting('PUSHLINE_KAFKA_RECEIPTS_PARTITIONS', '12', () => 12, integer(1, 10_000),
    'partitions of the receipts topic when a node creates it'),
  testCrashAfterReceiptCommit: setting<CrashPoint | undefined>('PUSHLINE_TEST_CRASH_AFTER_RECEIPT_COMMIT', 'unset', none, oneOf<CrashPoint>('queued', 'sent', 'delivered', 'acked', 'expired', 'failed'),
    'tests only: the process kills itself (SIGKILL) right after the receipt store committed a transition to this state and before its record reached the receipts spool'),
  receiptsStream: setting('PUSHLINE_RECEIPTS_STREAM', 'true', () => true, boolean,
    'every receipt transition is also a record for the receipts topic, through a spool in `<data dir>/receipts` (kept there without Kafka); `false`: no records, no receipts spool'),
  kafkaTelemetryPartitions: setting('PUSHLINE_KAFKA_TELEMETRY_PARTITIONS', '12', () => 12, integer(1, 10_000),
    'partitions of the telemetry topic when a node creates it (an existing topic is left as it is)'),
  kafkaPresencePartitions: setting('PUSHLINE_KAFKA_PRESENCE_PARTITIONS', '6', () => 6, integer(1, 10_000),
    'partitions of the presence topic when a node creates it'),
  kafkaReplicationFactor: setting<number | undefined>('PUSHLINE_KAFKA_REPLICATION_FACTOR', 'min(3, brokers)', none, integer(1, 32),
    'replication factor of the topics a node creates; unset: 3, or the number of brokers in the cluster when fewer. With 3 or more replicas the topics get `min.insync.replicas` 2, and the producer always waits for every in-sync replica (acks all)'),
  kafkaBatchRecords: setting('PUSHLINE_KAFKA_BATCH_RECORDS', '1000', () => 1000, integer(1, 100_000),
    'most uplinks in one produce request'),
  kafkaBatchBytes: setting('PUSHLINE_KAFKA_BATCH_BYTES', '524288', () => 524_288, integer(1024, 1_000_000),
    'about the most spool bytes in one produce request (keep it under the broker\'s `message.max.bytes`)'),
  kafkaLingerMs: setting('PUSHLINE_KAFKA_LINGER_MS', '5', () => 5, integer(0, 1000),
    'how long a produce request that is not full waits for more uplinks'),
  kafkaCompression: setting<KafkaCompression>('PUSHLINE_KAFKA_COMPRESSION', 'gzip', () => 'gzip', oneOf('gzip', 'snappy', 'none'),
    'compression of produce requests: `gzip` (zlib, off the event loop), `snappy` (pure JavaScript, on the event loop) or `none`'),
  kafkaGzipLevel: setting('PUSHLINE_KAFKA_GZIP_LEVEL', '1', () => 1, integer(1, 9),
    'zlib level of `gzip` compression: 1 is the fastest, 9 the smallest'),
  kafkaBackoffMaxMs: setting('PUSHLINE_KAFKA_BACKOFF_MAX_MS', '30000', () => 30_000, integer(300, 300_000),
    'longest wait between two attempts while Kafka is unreachable (it starts at 300 ms and doubles, with jitter)'),
  spoolMaxBytes: setting<number | undefined>('PUSHLINE_SPOOL_MAX_BYTES', '1073741824 with Kafka; unset: no bound without Kafka', none, integer(0, Number.MAX_SAFE_INTEGER),
    'bound on spooled bytes not yet in Kafka: above it QoS 1 PUBACKs wait (devices are slowed) and QoS 0 uplinks are dropped and counted; `0`: no bound'),
  spoolSegmentBytes: setting('PUSHLINE_SPOOL_SEGMENT_BYTES', '67108864', () => 67_108_864, integer(4096, 1_073_741_824),
    'size at which the spool starts a new segment file (segments are deleted once shipped)'),
  uplinkRatePerSecond: setting('PUSHLINE_UPLINK_RATE_PER_SECOND', '100', () => 100, integer(0, 1_000_000),
    'uplinks one connection may send per second; faster devices are slowed (PUBACK and socket reads wait), not dropped; `0`: no limit'),
  uplinkRateBurst: setting('PUSHLINE_UPLINK_RATE_BURST', '200', () => 200, integer(1, 1_000_000),
    'uplinks a connection may send at once above the rate'),
  assignmentStrategy: setting<AssignmentStrategy>('PUSHLINE_ASSIGNMENT_STRATEGY', 'least-connections', () => 'least-connections',
    oneOf('least-connections', 'weighted', 'consistent-hash', 'round-robin'),
    'how the registry picks a node at token time: `least-connections`, `weighted`, `consistent-hash` (sticky per device) or `round-robin`'),
  nodeWeight: setting('PUSHLINE_NODE_WEIGHT', '1', () => 1, integer(0, 1000),
    'this node\'s weight for node assignment (0: never picked)'),
  heartbeatMs: setting('PUSHLINE_HEARTBEAT_MS', '2000', () => 2000, integer(50, 60_000),
    'node heartbeat period: a node is dead 1.5 periods after its last heartbeat, presence counts are checked every period (entries compared one by one when they differ, and every 30 s)'),
  sessionExpirySeconds: setting('PUSHLINE_SESSION_EXPIRY_SECONDS', '604800', () => 604_800, integer(0, 31_536_000),
    'a persistent (clean=false) session whose device stayed offline this long is deleted with its queued messages; 0 keeps sessions forever'),
  drainRate: setting('PUSHLINE_DRAIN_RATE', '500', () => 500, integer(1, 1_000_000),
    'connections a draining node closes per second'),
  adminKeys: setting<string[] | undefined>('PUSHLINE_ADMIN_KEYS', 'unset: one generated and printed at start', none, keys(16),
    'comma-separated operator keys (16 characters or more each)'),
  provisioningKey: setting<string | undefined>('PUSHLINE_PROVISIONING_KEY', 'unset: self-registration off', none,
    (raw) => {
      const key = raw.trim()
      if (key.length < 16) throw new SettingValueError('must have at least 16 characters')
      return key
    }, 'fleet provisioning key for `POST /v1/devices` (16 characters or more)'),
  dataDir: setting('PUSHLINE_DATA_DIR', './data', () => './data', text, 'spool and other local files'),
  allowAnonymous: setting('PUSHLINE_ALLOW_ANONYMOUS', 'false', () => false, boolean,
    'development only: clients without credentials are accepted and may use any topic but `$SYS` and the topics of registered devices; ids of registered devices still need their token'),
  allowAnonymousShared: setting('PUSHLINE_ALLOW_ANONYMOUS_SHARED', 'false', () => false, boolean,
    'lets `PUSHLINE_ALLOW_ANONYMOUS` run with Redis (a shared deployment); without it such a start is refused'),
  logLevel: setting('PUSHLINE_LOG_LEVEL', 'info', () => 'info', oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    'log level of the JSON logs'),
  tokenTtlSeconds: setting('PUSHLINE_TOKEN_TTL_SECONDS', '86400', () => 86400, integer(1, 31_536_000),
    'lifetime of a device token'),
  tokenRateDevicePerMinute: setting('PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE', '30', () => 30, integer(1, 1_000_000),
    'token requests one device id may make per minute (429 beyond)'),
  tokenRateAddressPerMinute: setting('PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE', '1200', () => 1200, integer(1, 10_000_000),
    'token, self-registration and message-pull requests one source address may make per minute (429 beyond)'),
  apiThread: setting<boolean | undefined>('PUSHLINE_API_THREAD', 'unset: on in role `all` with Redis', none, boolean,
    'role `all` serves the HTTP API from a thread of its own at a lower CPU priority (`PUSHLINE_API_THREAD_NICE`), so MQTT traffic keeps its latency while the API is busy (docs/onboarding.md); needs Redis, through which the two threads share their state. Ignored in roles `broker` and `api`'),
  apiThreadNice: setting('PUSHLINE_API_THREAD_NICE', '10', () => 10, integer(0, 19),
    'nice increment of that API thread over the process (Linux; capped at 19): the higher, the more the broker thread goes first when the CPUs are short'),
  tokenConcurrency: setting<number | undefined>('PUSHLINE_TOKEN_CONCURRENCY', 'unset: 4 when the HTTP API shares its thread with the broker (role `all` without the API thread), no bound otherwise', none, integer(0, 100_000),
    'token requests (`POST /v1/devices/{id}/token`) one process works on at once, more wait in a queue; `0`: no bound. A bound keeps a broker on the same thread answering while tokens are issued at full rate'),
  tokenQueue: setting('PUSHLINE_TOKEN_QUEUE', '2048', () => 2048, integer(0, 1_000_000),
    'token requests that may wait for one of those; beyond them 503 `IOT_ERR_BUSY` with `Retry-After`'),
  messagesRateDevicePerMinute: setting('PUSHLINE_MESSAGES_RATE_DEVICE_PER_MINUTE', '60', () => 60, integer(1, 1_000_000),
    'pulls of missed downlinks (`GET /v1/devices/me/messages`) one device may make per minute (429 beyond); each also counts against the source address'),
  secretMaxFailures: setting('PUSHLINE_SECRET_MAX_FAILURES', '5', () => 5, integer(1, 1000),
    'wrong secrets or tokens in a row that lock a device\'s token endpoint'),
  secretLockoutSeconds: setting('PUSHLINE_SECRET_LOCKOUT_SECONDS', '300', () => 300, integer(1, 86_400),
    'how long such a lock lasts'),
  maxPayloadBytes: setting('PUSHLINE_MAX_PAYLOAD_BYTES', '262144', () => 262144, integer(1, 268_435_455),
    'largest MQTT publish payload a device may send; larger ones are refused and counted'),
  maxConnections: setting('PUSHLINE_MAX_CONNECTIONS', '19500', () => 19_500, integer(0, 10_000_000),
    'open MQTT connections (TCP, TLS, WebSocket) one node holds; beyond it a new connection gets CONNACK 3 and is closed; `0`: no limit. Keep it under the process\'s open-file limit, with room for Redis, Kafka, HTTP and spool files'),
  connectRatePerSecond: setting('PUSHLINE_CONNECT_RATE_PER_SECOND', '5000', () => 5000, integer(0, 10_000_000),
    'new connections one node accepts per second (token bucket); beyond it CONNACK 3 and close, the device retries later; `0`: no limit'),
  connectRateBurst: setting('PUSHLINE_CONNECT_RATE_BURST', '5000', () => 5000, integer(1, 10_000_000),
    'connections accepted at once above that rate'),
  connectConcurrency: setting('PUSHLINE_CONNECT_CONCURRENCY', '256', () => 256, integer(0, 1_000_000),
    'MQTT connects one node authenticates at once (token, certificate or registry check in Redis), more wait in a queue; `0`: no bound. Keeps a node\'s Redis commands under their timeout in a reconnect storm'),
  connectQueue: setting('PUSHLINE_CONNECT_QUEUE', '65536', () => 65_536, integer(0, 1_000_000),
    'connects that may wait for one of those, a guard on the queue\'s memory (how long they wait is bounded by `PUSHLINE_CONNECT_QUEUE_WAIT_MS`); beyond them CONNACK 3 at once, before any Redis command, and the device retries later'),
  connectQueueWaitMs: setting('PUSHLINE_CONNECT_QUEUE_WAIT_MS', '10000', () => 10_000, integer(0, 600_000),
    'longest wait of a connect for one of those; then CONNACK 3 without a Redis command, and the device retries later; `0`: no bound. Kept well under the CONNACK timeout common in device libraries (30 s), so a device does not give up on a connect the node will still check, with room left for SYN retransmits to a full accept queue, the TLS handshake and the check itself; lower it for devices with a shorter timeout'),
  connectTimeoutMs: setting('PUSHLINE_CONNECT_TIMEOUT_MS', '10000', () => 10_000, integer(100, 600_000),
    'a socket that has not sent CONNECT (or finished its TLS handshake) by then is closed'),
  keepaliveMaxSeconds: setting('PUSHLINE_KEEPALIVE_MAX_SECONDS', '600', () => 600, integer(1, 65_535),
    'longest MQTT keepalive; a client asking for 0 (none) or more is held to it: silent for 1.5 times that, it is disconnected'),
  subscriberBufferBytes: setting('PUSHLINE_SUBSCRIBER_BUFFER_BYTES', '262144', () => 262_144, integer(1024, 1_073_741_824),
    'bytes waiting in one connection\'s socket above which QoS 0 messages to it are dropped and counted (QoS 1 waits)'),
  deliveryQueueMax: setting('PUSHLINE_DELIVERY_QUEUE_MAX', '20000', () => 20_000, integer(100, 10_000_000),
    'QoS 0 deliveries in flight on one node above which its publishers\' sockets are no longer read (until half of it); at twice this, QoS 0 deliveries are dropped and counted'),
  spoolFsync: setting<FsyncPolicy>('PUSHLINE_SPOOL_FSYNC', 'always', () => 'always', oneOf('always', 'interval', 'never'),
    '`always`: a QoS 1 uplink is acknowledged after its batch is fsynced (group commit); `interval`: fsync every second; `never`: leave it to the OS'),
  aclDenyAction: setting<AclDenyAction>('PUSHLINE_ACL_DENY_ACTION', 'drop', () => 'drop', oneOf('drop', 'disconnect'),
    'what a forbidden publish does: `drop` (counted) or `disconnect`'),
  shutdownGraceMs: setting('PUSHLINE_SHUTDOWN_GRACE_MS', '5000', () => 5000, integer(100, 120_000),
    'longest a graceful stop waits before it exits anyway'),
  historyMaxMessages: setting('PUSHLINE_HISTORY_MAX_MESSAGES', '1000', () => 1000, integer(1, 1_000_000),
    'downlinks kept in each device\'s history (the oldest go first)'),
  historyMaxAgeSeconds: setting('PUSHLINE_HISTORY_MAX_AGE_SECONDS', '604800', () => 604_800, integer(60, 31_536_000),
    'downlinks older than this leave the history'),
  pushMaxTtlSeconds: setting('PUSHLINE_PUSH_MAX_TTL_SECONDS', '604800', () => 604_800, integer(1, 31_536_000),
    'largest `ttlSeconds` a push may ask for'),
  pushMaxDataBytes: setting('PUSHLINE_PUSH_MAX_DATA_BYTES', '65536', () => 65_536, integer(16, 8_388_608),
    'largest push `data`, measured as JSON'),
  pushMaxLiveBroadcasts: setting('PUSHLINE_PUSH_MAX_LIVE_BROADCASTS', '1000', () => 1000, integer(1, 1_000_000),
    'group and broadcast pushes within their ttl at once; every broker node caches them for devices that subscribe later, so beyond it a new one gets 429 `IOT_ERR_PUSH_LIVE_LIMIT`')
} as const

export type Settings = typeof settings
export type SettingValue<S> = S extends Setting<infer T> ? T : never
