import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig, type Environment } from '../../src/config/load-config.ts'
import { settings } from '../../src/config/settings.ts'
import { isPushlineError, type PushlineError } from '../../src/shared/errors.ts'

const KEY_A = 'admin-key-aaaaaaaaaaaa'
const KEY_B = 'admin-key-bbbbbbbbbbbb'

/** Runs loadConfig, expects it to throw a PushlineError with code IOT_ERR_CONFIG, and returns that error. */
function configError (env: Environment): PushlineError {
  let caught: unknown
  try {
    loadConfig(env)
  } catch (err) {
    caught = err
  }
  assert.ok(caught !== undefined, 'loadConfig should have thrown')
  assert.ok(isPushlineError(caught, 'IOT_ERR_CONFIG'), `expected a PushlineError IOT_ERR_CONFIG, got ${String(caught)}`)
  return caught
}

test('an empty environment gives the documented defaults for every setting', () => {
  const c = loadConfig({})
  assert.equal(c.role, 'all')
  assert.equal(c.mqttPort, 1883)
  assert.equal(c.wsPort, 8083)
  assert.equal(c.httpPort, 3000)
  assert.equal(c.mode, 'embedded')
  assert.equal(c.redisUrl, undefined)
  assert.equal(c.kafkaBrokers, undefined)
  assert.equal(c.provisioningKey, undefined)
  assert.equal(c.dataDir, './data')
  assert.equal(c.allowAnonymous, false)
  assert.equal(c.allowAnonymousShared, false)
  assert.equal(c.host, '0.0.0.0')
  assert.equal(c.publicHost, 'localhost')
  assert.equal(c.redisPrefix, 'pushline:')
  assert.equal(c.kafkaTelemetryTopic, 'iot.telemetry')
  assert.equal(c.kafkaPresenceTopic, 'iot.presence')
  assert.equal(c.kafkaTelemetryPartitions, 12)
  assert.equal(c.kafkaPresencePartitions, 6)
  assert.equal(c.kafkaReplicationFactor, undefined, 'unset: min(3, brokers), decided when the topics are created')
  assert.equal(c.redis, undefined)
  assert.equal(c.redisSentinels, undefined)
  assert.equal(c.redisWaitReplicas, 1)
  assert.equal(c.redisWaitTimeoutMs, 1000)
  assert.equal(c.redisCommandTimeoutMs, 2000)
  assert.equal(c.connectConcurrency, 256)
  assert.equal(c.connectQueue, 65536)
  assert.equal(c.connectQueueWaitMs, 10000)
  assert.equal(c.kafkaBatchRecords, 1000)
  assert.equal(c.kafkaBatchBytes, 524288)
  assert.equal(c.kafkaLingerMs, 5)
  assert.equal(c.kafkaCompression, 'gzip')
  assert.equal(c.kafkaGzipLevel, 1)
  assert.equal(c.kafkaBackoffMaxMs, 30000)
  assert.equal(c.spoolMaxBytes, undefined, 'without Kafka the spool is the sink: no bound')
  assert.equal(c.spoolSegmentBytes, 64 * 1024 * 1024)
  assert.equal(c.uplinkRatePerSecond, 100)
  assert.equal(c.uplinkRateBurst, 200)
  assert.equal(c.logLevel, 'info')
  assert.equal(c.tokenTtlSeconds, 86400)
  assert.equal(c.maxPayloadBytes, 262144)
  assert.equal(c.spoolFsync, 'always')
  assert.equal(c.aclDenyAction, 'drop')
  assert.equal(c.shutdownGraceMs, 5000)
})

test('without configured admin keys one strong key is generated and flagged as generated', () => {
  const c = loadConfig({})
  assert.equal(c.adminKeyGenerated, true)
  assert.equal(c.adminKeys.length, 1)
  const key = c.adminKeys[0] as string
  assert.ok(key.length >= 32, `generated key too short: ${key}`)
  assert.match(key, /^[A-Za-z0-9_-]+$/)
  assert.notEqual(loadConfig({}).adminKeys[0], key, 'each start generates a new key')
})

test('without PUSHLINE_NODE_ID each load picks a different valid node id', () => {
  const a = loadConfig({}).nodeId
  const b = loadConfig({}).nodeId
  assert.notEqual(a, b)
  for (const id of [a, b]) {
    assert.match(id, /^[A-Za-z0-9_.-]{1,64}$/)
    // The generated id must itself be acceptable as PUSHLINE_NODE_ID.
    assert.equal(loadConfig({ PUSHLINE_NODE_ID: id }).nodeId, id)
  }
})

test('empty and blank variables count as unset', () => {
  const c = loadConfig({ PUSHLINE_MQTT_PORT: '', PUSHLINE_ROLE: '   ', PUSHLINE_ADMIN_KEYS: '' })
  assert.equal(c.mqttPort, 1883)
  assert.equal(c.role, 'all')
  assert.equal(c.adminKeyGenerated, true)
})

test('every variable is parsed from the environment object passed in', () => {
  const env: Environment = {
    PUSHLINE_ROLE: 'broker',
    PUSHLINE_NODE_ID: 'node-7.a_b',
    PUSHLINE_HOST: ' 127.0.0.1 ',
    PUSHLINE_PUBLIC_HOST: 'mqtt.example.com',
    PUSHLINE_MQTT_PORT: '11883',
    PUSHLINE_WS_PORT: '18083',
    PUSHLINE_HTTP_PORT: '13000',
    PUSHLINE_REDIS_URL: 'rediss://user:pw@redis.example.com:6380/2',
    PUSHLINE_REDIS_PREFIX: 'fleet-1:',
    PUSHLINE_KAFKA_BROKERS: 'k1:9092, k2.example.com:9093 ,10.0.0.3:9094,',
    PUSHLINE_KAFKA_TELEMETRY_TOPIC: 'fleet.telemetry',
    PUSHLINE_KAFKA_PRESENCE_TOPIC: 'fleet_presence-v2',
    PUSHLINE_KAFKA_TELEMETRY_PARTITIONS: '24',
    PUSHLINE_KAFKA_PRESENCE_PARTITIONS: '3',
    PUSHLINE_KAFKA_RECEIPTS_TOPIC: 'fleet.receipts',
    PUSHLINE_KAFKA_RECEIPTS_PARTITIONS: '48',
    PUSHLINE_RECEIPTS_STREAM: 'off',
    PUSHLINE_KAFKA_REPLICATION_FACTOR: '3',
    PUSHLINE_KAFKA_BATCH_RECORDS: '200',
    PUSHLINE_KAFKA_BATCH_BYTES: '65536',
    PUSHLINE_KAFKA_LINGER_MS: '0',
    PUSHLINE_KAFKA_COMPRESSION: 'snappy',
    PUSHLINE_KAFKA_GZIP_LEVEL: '6',
    PUSHLINE_KAFKA_BACKOFF_MAX_MS: '1000',
    PUSHLINE_SPOOL_MAX_BYTES: '1048576',
    PUSHLINE_SPOOL_SEGMENT_BYTES: '8192',
    PUSHLINE_UPLINK_RATE_PER_SECOND: '0',
    PUSHLINE_UPLINK_RATE_BURST: '10',
    PUSHLINE_ADMIN_KEYS: `${KEY_A}, ${KEY_B}`,
    PUSHLINE_PROVISIONING_KEY: 'provisioning-key-0123',
    PUSHLINE_DATA_DIR: '/var/lib/pushline',
    PUSHLINE_ALLOW_ANONYMOUS: 'yes',
    PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'on',
    PUSHLINE_LOG_LEVEL: 'debug',
    PUSHLINE_TOKEN_TTL_SECONDS: '3600',
    PUSHLINE_ASSIGNMENT_STRATEGY: 'consistent-hash',
    PUSHLINE_NODE_WEIGHT: '3',
    PUSHLINE_HEARTBEAT_MS: '500',
    PUSHLINE_DRAIN_RATE: '50',
    PUSHLINE_SESSION_EXPIRY_SECONDS: '3600',
    PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE: '7',
    PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '70',
    PUSHLINE_TOKEN_CONCURRENCY: '0',
    PUSHLINE_API_THREAD: 'true',
    PUSHLINE_API_THREAD_NICE: '15',
    PUSHLINE_TOKEN_QUEUE: '12',
    PUSHLINE_SECRET_MAX_FAILURES: '3',
    PUSHLINE_SECRET_LOCKOUT_SECONDS: '60',
    PUSHLINE_MAX_PAYLOAD_BYTES: '1024',
    PUSHLINE_SPOOL_FSYNC: 'interval',
    PUSHLINE_ACL_DENY_ACTION: 'disconnect',
    PUSHLINE_SHUTDOWN_GRACE_MS: '250',
    PUSHLINE_HISTORY_MAX_MESSAGES: '50',
    PUSHLINE_HISTORY_MAX_AGE_SECONDS: '3600',
    PUSHLINE_PUSH_MAX_TTL_SECONDS: '7200',
    PUSHLINE_PUSH_MAX_DATA_BYTES: '4096',
    PUSHLINE_PUSH_MAX_LIVE_BROADCASTS: '25',
    PUSHLINE_TLS_CERT_FILE: '/etc/pushline/cert.pem',
    PUSHLINE_TLS_KEY_FILE: '/etc/pushline/key.pem',
    PUSHLINE_TLS_CA_FILE: '/etc/pushline/ca.pem',
    PUSHLINE_TLS_CLIENT_CA_FILE: '/etc/pushline/clients.pem',
    PUSHLINE_TLS_CLIENT_CRL_FILE: '/etc/pushline/clients.crl',
    PUSHLINE_TLS_CLIENT_ID_FIELD: 'san-dns',
    PUSHLINE_MQTTS_PORT: '18883',
    PUSHLINE_WSS_PORT: '18084',
    PUSHLINE_MAX_CONNECTIONS: '5000',
    PUSHLINE_CONNECT_RATE_PER_SECOND: '100',
    PUSHLINE_CONNECT_RATE_BURST: '20',
    PUSHLINE_CONNECT_CONCURRENCY: '64',
    PUSHLINE_CONNECT_QUEUE: '128',
    PUSHLINE_CONNECT_QUEUE_WAIT_MS: '5000',
    PUSHLINE_REDIS_COMMAND_TIMEOUT_MS: '3000',
    PUSHLINE_CONNECT_TIMEOUT_MS: '2000',
    PUSHLINE_KEEPALIVE_MAX_SECONDS: '120',
    PUSHLINE_SUBSCRIBER_BUFFER_BYTES: '65536',
    PUSHLINE_TEST_CRASH_AFTER_RECEIPT_COMMIT: 'delivered',
    PUSHLINE_DELIVERY_QUEUE_MAX: '1000',
    PUSHLINE_MESSAGES_RATE_DEVICE_PER_MINUTE: '9',
    PUSHLINE_REDIS_PASSWORD: 'pw from the setting',
    PUSHLINE_REDIS_WAIT_REPLICAS: '2',
    PUSHLINE_REDIS_WAIT_TIMEOUT_MS: '250'
  }
  // Guard: this test covers every setting in the table, so a new setting must be added here. The Sentinel settings
  // exclude PUSHLINE_REDIS_URL: the Sentinel tests below cover them.
  const sentinelOnly = ['PUSHLINE_REDIS_SENTINELS', 'PUSHLINE_REDIS_SENTINEL_MASTER', 'PUSHLINE_REDIS_SENTINEL_PASSWORD']
  assert.deepEqual(Object.values(settings).map((s) => s.env).sort(), [...Object.keys(env), ...sentinelOnly].sort())

  const c = loadConfig(env)
  assert.equal(c.role, 'broker')
  assert.equal(c.nodeId, 'node-7.a_b')
  assert.equal(c.host, '127.0.0.1')
  assert.equal(c.publicHost, 'mqtt.example.com')
  assert.equal(c.mqttPort, 11883)
  assert.equal(c.wsPort, 18083)
  assert.equal(c.httpPort, 13000)
  assert.equal(c.redisUrl, 'rediss://user:pw@redis.example.com:6380/2')
  assert.equal(c.redisPrefix, 'fleet-1:')
  assert.equal(c.tokenConcurrency, 0)
  assert.equal(c.apiThread, false, 'ignored in role broker')
  assert.equal(c.apiThreadNice, 15)
  assert.equal(c.tokenQueue, 12)
  assert.deepEqual(c.kafkaBrokers, ['k1:9092', 'k2.example.com:9093', '10.0.0.3:9094'])
  assert.equal(c.kafkaTelemetryTopic, 'fleet.telemetry')
  assert.equal(c.kafkaPresenceTopic, 'fleet_presence-v2')
  assert.equal(c.kafkaTelemetryPartitions, 24)
  assert.equal(c.kafkaPresencePartitions, 3)
  assert.equal(c.kafkaReceiptsTopic, 'fleet.receipts')
  assert.equal(c.kafkaReceiptsPartitions, 48)
  assert.equal(c.receiptsStream, false)
  assert.equal(c.testCrashAfterReceiptCommit, 'delivered')
  assert.equal(c.kafkaReplicationFactor, 3)
  assert.deepEqual(c.redis, { kind: 'url', url: 'rediss://user:pw@redis.example.com:6380/2', password: 'pw from the setting', commandTimeoutMs: 3000 })
  assert.equal(c.redisWaitReplicas, 2)
  assert.equal(c.redisWaitTimeoutMs, 250)
  assert.equal(c.kafkaBatchRecords, 200)
  assert.equal(c.kafkaBatchBytes, 65536)
  assert.equal(c.kafkaLingerMs, 0)
  assert.equal(c.kafkaCompression, 'snappy')
  assert.equal(c.kafkaGzipLevel, 6)
  assert.equal(c.kafkaBackoffMaxMs, 1000)
  assert.equal(c.spoolMaxBytes, 1048576)
  assert.equal(c.spoolSegmentBytes, 8192)
  assert.equal(c.uplinkRatePerSecond, 0)
  assert.equal(c.uplinkRateBurst, 10)
  assert.deepEqual(c.adminKeys, [KEY_A, KEY_B])
  assert.equal(c.adminKeyGenerated, false)
  assert.equal(c.provisioningKey, 'provisioning-key-0123')
  assert.equal(c.dataDir, '/var/lib/pushline')
  assert.equal(c.allowAnonymous, true)
  assert.equal(c.allowAnonymousShared, true)
  assert.equal(c.logLevel, 'debug')
  assert.equal(c.tokenTtlSeconds, 3600)
  assert.equal(c.assignmentStrategy, 'consistent-hash')
  assert.equal(c.nodeWeight, 3)
  assert.equal(c.heartbeatMs, 500)
  assert.equal(c.drainRate, 50)
  assert.equal(c.sessionExpirySeconds, 3600)
  assert.equal(c.tokenRateDevicePerMinute, 7)
  assert.equal(c.tokenRateAddressPerMinute, 70)
  assert.equal(c.secretMaxFailures, 3)
  assert.equal(c.secretLockoutSeconds, 60)
  assert.equal(c.maxPayloadBytes, 1024)
  assert.equal(c.spoolFsync, 'interval')
  assert.equal(c.aclDenyAction, 'disconnect')
  assert.equal(c.shutdownGraceMs, 250)
  assert.equal(c.historyMaxMessages, 50)
  assert.equal(c.historyMaxAgeSeconds, 3600)
  assert.equal(c.pushMaxTtlSeconds, 7200)
  assert.equal(c.pushMaxDataBytes, 4096)
  assert.equal(c.pushMaxLiveBroadcasts, 25)
  assert.equal(c.tlsCertFile, '/etc/pushline/cert.pem')
  assert.equal(c.tlsKeyFile, '/etc/pushline/key.pem')
  assert.equal(c.tlsCaFile, '/etc/pushline/ca.pem')
  assert.equal(c.tlsClientCaFile, '/etc/pushline/clients.pem')
  assert.equal(c.tlsClientCrlFile, '/etc/pushline/clients.crl')
  assert.equal(c.tlsClientIdField, 'san-dns')
  assert.equal(c.mqttsPort, 18883)
  assert.equal(c.wssPort, 18084)
  assert.equal(c.maxConnections, 5000)
  assert.equal(c.connectRatePerSecond, 100)
  assert.equal(c.connectRateBurst, 20)
  assert.equal(c.connectConcurrency, 64)
  assert.equal(c.connectQueue, 128)
  assert.equal(c.connectQueueWaitMs, 5000)
  assert.equal(c.connectTimeoutMs, 2000)
  assert.equal(c.keepaliveMaxSeconds, 120)
  assert.equal(c.subscriberBufferBytes, 65536)
  assert.equal(c.deliveryQueueMax, 1000)
  assert.equal(c.messagesRateDevicePerMinute, 9)
  assert.equal(c.mode, 'cluster')
})

test('booleans accept true/false, 1/0, yes/no, on/off in any case and refuse anything else', () => {
  for (const raw of ['true', 'TRUE', '1', 'yes', 'On']) assert.equal(loadConfig({ PUSHLINE_ALLOW_ANONYMOUS: raw }).allowAnonymous, true, raw)
  for (const raw of ['false', 'False', '0', 'no', 'OFF']) assert.equal(loadConfig({ PUSHLINE_ALLOW_ANONYMOUS: raw }).allowAnonymous, false, raw)
  for (const raw of ['maybe', '2', 'y']) {
    assert.match(configError({ PUSHLINE_ALLOW_ANONYMOUS: raw }).message, /PUSHLINE_ALLOW_ANONYMOUS/, raw)
  }
})

test('each fsync policy and role value is accepted, other values are refused', () => {
  for (const p of ['always', 'interval', 'never'] as const) assert.equal(loadConfig({ PUSHLINE_SPOOL_FSYNC: p }).spoolFsync, p)
  assert.match(configError({ PUSHLINE_SPOOL_FSYNC: 'sometimes' }).message, /PUSHLINE_SPOOL_FSYNC/)
  assert.match(configError({ PUSHLINE_ROLE: 'worker' }).message, /PUSHLINE_ROLE/)
  assert.match(configError({ PUSHLINE_ROLE: 'ALL' }).message, /PUSHLINE_ROLE/)
})

test('ports must be whole numbers from 0 to 65535', () => {
  for (const raw of ['-1', '65536', '80.5', 'abc', '1e3', '0x50']) {
    assert.match(configError({ PUSHLINE_MQTT_PORT: raw }).message, /PUSHLINE_MQTT_PORT/, raw)
  }
  assert.equal(loadConfig({ PUSHLINE_MQTT_PORT: '65535' }).mqttPort, 65535)
})

test('integer settings enforce their ranges', () => {
  assert.match(configError({ PUSHLINE_SECRET_LOCKOUT_SECONDS: '0' }).message, /PUSHLINE_SECRET_LOCKOUT_SECONDS/)
  assert.match(configError({ PUSHLINE_TOKEN_TTL_SECONDS: '0' }).message, /PUSHLINE_TOKEN_TTL_SECONDS/)
  assert.match(configError({ PUSHLINE_SHUTDOWN_GRACE_MS: '99' }).message, /PUSHLINE_SHUTDOWN_GRACE_MS/)
  assert.match(configError({ PUSHLINE_MAX_PAYLOAD_BYTES: '268435456' }).message, /PUSHLINE_MAX_PAYLOAD_BYTES/)
})

test('several bad values at once throw a single error that names every one of them', () => {
  const err = configError({
    PUSHLINE_MQTT_PORT: 'not-a-port',
    PUSHLINE_LOG_LEVEL: 'loud',
    PUSHLINE_ADMIN_KEYS: 'short',
    PUSHLINE_HTTP_PORT: '3000'
  })
  assert.equal(err.name, 'PushlineError')
  assert.equal(err.statusCode, 500)
  for (const name of ['PUSHLINE_MQTT_PORT', 'PUSHLINE_LOG_LEVEL', 'PUSHLINE_ADMIN_KEYS']) {
    assert.ok(err.message.includes(name), `message should name ${name}: ${err.message}`)
  }
  assert.ok(!err.message.includes('PUSHLINE_HTTP_PORT'), 'a valid variable is not reported')
  // The offending value is shown for the settings that echo it; secrets are not required to be echoed.
  assert.ok(err.message.includes('not-a-port'))
  assert.ok(err.message.includes('loud'))
})

test('a bad value and a cross-setting problem are reported together in one error', () => {
  const err = configError({ PUSHLINE_ROLE: 'broker', PUSHLINE_LOG_LEVEL: 'loud', PUSHLINE_MQTT_PORT: '3000' })
  assert.ok(err.message.includes('PUSHLINE_LOG_LEVEL'), err.message)
  assert.ok(err.message.includes('PUSHLINE_REDIS_URL'), err.message)
  assert.ok(err.message.includes('PUSHLINE_MQTT_PORT'), err.message)
})

test('PUSHLINE_ROLE broker or api without PUSHLINE_REDIS_URL is refused', () => {
  for (const role of ['broker', 'api']) {
    const err = configError({ PUSHLINE_ROLE: role })
    assert.ok(err.message.includes(`PUSHLINE_ROLE=${role}`), err.message)
    assert.ok(err.message.includes('PUSHLINE_REDIS_URL'), err.message)
    const c = loadConfig({ PUSHLINE_ROLE: role, PUSHLINE_REDIS_URL: 'redis://localhost:6379' })
    assert.equal(c.role, role)
    assert.equal(c.mode, 'cluster')
  }
})

test('two listeners on the same non-zero port are refused, naming both variables', () => {
  const cases: Array<[Environment, string, string]> = [
    [{ PUSHLINE_MQTT_PORT: '8083' }, 'PUSHLINE_MQTT_PORT', 'PUSHLINE_WS_PORT'],
    [{ PUSHLINE_WS_PORT: '3000' }, 'PUSHLINE_WS_PORT', 'PUSHLINE_HTTP_PORT'],
    [{ PUSHLINE_HTTP_PORT: '1883' }, 'PUSHLINE_MQTT_PORT', 'PUSHLINE_HTTP_PORT']
  ]
  for (const [env, a, b] of cases) {
    const err = configError(env)
    assert.ok(err.message.includes(a) && err.message.includes(b), err.message)
  }
  const all = configError({ PUSHLINE_MQTT_PORT: '4000', PUSHLINE_WS_PORT: '4000', PUSHLINE_HTTP_PORT: '4000' })
  assert.equal(all.message.split('\n').filter((l) => l.includes('4000')).length, 3, all.message)
})

test('a TLS certificate without its key, or a key or CA without a certificate, is refused', () => {
  assert.match(configError({ PUSHLINE_TLS_CERT_FILE: '/c.pem' }).message, /PUSHLINE_TLS_CERT_FILE and PUSHLINE_TLS_KEY_FILE go together/)
  assert.match(configError({ PUSHLINE_TLS_KEY_FILE: '/k.pem' }).message, /PUSHLINE_TLS_CERT_FILE and PUSHLINE_TLS_KEY_FILE go together/)
  assert.match(configError({ PUSHLINE_TLS_CA_FILE: '/ca.pem' }).message, /PUSHLINE_TLS_CA_FILE needs/)
  const c = loadConfig({})
  assert.equal(c.tlsCertFile, undefined, 'no TLS by default')
})

test('client certificate settings: a client CA needs TLS, a CRL needs a client CA, and the id field is cn or san-dns', () => {
  const tls = { PUSHLINE_TLS_CERT_FILE: '/c.pem', PUSHLINE_TLS_KEY_FILE: '/k.pem' }
  assert.match(configError({ PUSHLINE_TLS_CLIENT_CA_FILE: '/clients.pem' }).message, /PUSHLINE_TLS_CLIENT_CA_FILE needs PUSHLINE_TLS_CERT_FILE/)
  assert.match(configError({ ...tls, PUSHLINE_TLS_CLIENT_CRL_FILE: '/crl.pem' }).message, /PUSHLINE_TLS_CLIENT_CRL_FILE needs PUSHLINE_TLS_CLIENT_CA_FILE/)
  assert.match(configError({ ...tls, PUSHLINE_TLS_CLIENT_CA_FILE: '/clients.pem', PUSHLINE_TLS_CLIENT_ID_FIELD: 'uri' }).message, /PUSHLINE_TLS_CLIENT_ID_FIELD must be one of cn, san-dns/)
  const c = loadConfig({ ...tls, PUSHLINE_TLS_CLIENT_CA_FILE: '/clients.pem', PUSHLINE_TLS_CLIENT_CRL_FILE: '/crl.pem', PUSHLINE_TLS_CLIENT_ID_FIELD: 'san-dns' })
  assert.deepEqual([c.tlsClientCaFile, c.tlsClientCrlFile, c.tlsClientIdField], ['/clients.pem', '/crl.pem', 'san-dns'])
  const d = loadConfig({})
  assert.deepEqual([d.tlsClientCaFile, d.tlsClientCrlFile, d.tlsClientIdField], [undefined, undefined, 'cn'], 'no client certificates by default')
})

test('the TLS ports take part in the port check only when TLS is configured', () => {
  const tls = { PUSHLINE_TLS_CERT_FILE: '/c.pem', PUSHLINE_TLS_KEY_FILE: '/k.pem' }
  const err = configError({ ...tls, PUSHLINE_MQTTS_PORT: '1883' })
  assert.ok(err.message.includes('PUSHLINE_MQTT_PORT') && err.message.includes('PUSHLINE_MQTTS_PORT'), err.message)
  assert.match(configError({ ...tls, PUSHLINE_WSS_PORT: '8883' }).message, /PUSHLINE_MQTTS_PORT and PUSHLINE_WSS_PORT are both 8883/)
  assert.equal(loadConfig({ PUSHLINE_MQTTS_PORT: '1883' }).mqttsPort, 1883, 'unused without a certificate')
})

test('port 0 may be used by every listener at once', () => {
  const c = loadConfig({ PUSHLINE_MQTT_PORT: '0', PUSHLINE_WS_PORT: '0', PUSHLINE_HTTP_PORT: '0' })
  assert.equal(c.mqttPort, 0)
  assert.equal(c.wsPort, 0)
  assert.equal(c.httpPort, 0)
})

test('a Redis URL must be a redis:// or rediss:// URL', () => {
  for (const raw of ['localhost:6379', 'http://redis:6379', 'not a url', 'redis']) {
    const err = configError({ PUSHLINE_REDIS_URL: raw })
    assert.ok(err.message.includes('PUSHLINE_REDIS_URL'), `${raw}: ${err.message}`)
  }
  assert.equal(loadConfig({ PUSHLINE_REDIS_URL: 'redis://redis:6379' }).redisUrl, 'redis://redis:6379')
})

test('setting PUSHLINE_REDIS_URL switches to cluster mode', () => {
  assert.equal(loadConfig({ PUSHLINE_REDIS_URL: 'redis://127.0.0.1:6379/0' }).mode, 'cluster')
  assert.equal(loadConfig({ PUSHLINE_KAFKA_BROKERS: 'kafka:9092' }).mode, 'embedded', 'Kafka alone does not move state to Redis')
})

test('a Kafka broker list must hold host:port entries', () => {
  for (const raw of ['kafka', 'kafka:', ':9092', 'kafka:9092,other', ',', 'kafka 9092', 'kafka:abc', 'kafka:9092/x']) {
    const err = configError({ PUSHLINE_KAFKA_BROKERS: raw })
    assert.ok(err.message.includes('PUSHLINE_KAFKA_BROKERS'), `${raw}: ${err.message}`)
  }
})

test('a Kafka broker port above 65535 is refused', () => {
  assert.match(configError({ PUSHLINE_KAFKA_BROKERS: 'kafka:99999' }).message, /PUSHLINE_KAFKA_BROKERS/)
})

test('admin and provisioning keys shorter than 16 characters are refused', () => {
  assert.match(configError({ PUSHLINE_ADMIN_KEYS: 'x'.repeat(15) }).message, /PUSHLINE_ADMIN_KEYS/)
  assert.match(configError({ PUSHLINE_ADMIN_KEYS: `${KEY_A},short` }).message, /PUSHLINE_ADMIN_KEYS/, 'one short key among good ones')
  assert.match(configError({ PUSHLINE_ADMIN_KEYS: ' , ,' }).message, /PUSHLINE_ADMIN_KEYS/)
  assert.match(configError({ PUSHLINE_PROVISIONING_KEY: 'x'.repeat(15) }).message, /PUSHLINE_PROVISIONING_KEY/)
  assert.deepEqual(loadConfig({ PUSHLINE_ADMIN_KEYS: 'x'.repeat(16) }).adminKeys, ['x'.repeat(16)])
  assert.equal(loadConfig({ PUSHLINE_PROVISIONING_KEY: 'p'.repeat(16) }).provisioningKey, 'p'.repeat(16))
})

test('node ids, Redis prefixes and Kafka topic names are validated', () => {
  assert.match(configError({ PUSHLINE_NODE_ID: 'has space' }).message, /PUSHLINE_NODE_ID/)
  assert.match(configError({ PUSHLINE_NODE_ID: 'n'.repeat(65) }).message, /PUSHLINE_NODE_ID/)
  assert.match(configError({ PUSHLINE_REDIS_PREFIX: 'a b' }).message, /PUSHLINE_REDIS_PREFIX/)
  assert.match(configError({ PUSHLINE_KAFKA_TELEMETRY_TOPIC: 'bad/topic' }).message, /PUSHLINE_KAFKA_TELEMETRY_TOPIC/)
  assert.match(configError({ PUSHLINE_KAFKA_PRESENCE_TOPIC: 'bad topic' }).message, /PUSHLINE_KAFKA_PRESENCE_TOPIC/)
})

test('the returned config is frozen', () => {
  const c = loadConfig({ PUSHLINE_ADMIN_KEYS: `${KEY_A},${KEY_B}` })
  assert.ok(Object.isFrozen(c))
  assert.ok(Object.isFrozen(c.adminKeys))
  assert.throws(() => { (c as { mqttPort: number }).mqttPort = 1 }, TypeError)
  assert.throws(() => { (c.adminKeys as string[]).push('another-key-0000000') }, TypeError)
  assert.equal(c.mqttPort, 1883)
  assert.deepEqual(c.adminKeys, [KEY_A, KEY_B])
})

test('the Kafka broker list in the returned config is frozen too', () => {
  const c = loadConfig({ PUSHLINE_KAFKA_BROKERS: 'k1:9092,k2:9092' })
  assert.ok(Object.isFrozen(c.kafkaBrokers), 'kafkaBrokers is mutable')
})

test('the spool is bounded at 1 GiB by default once Kafka is configured, and 0 turns the bound off', () => {
  assert.equal(loadConfig({ PUSHLINE_KAFKA_BROKERS: 'k:9092' }).spoolMaxBytes, 1024 ** 3)
  assert.equal(loadConfig({ PUSHLINE_KAFKA_BROKERS: 'k:9092', PUSHLINE_SPOOL_MAX_BYTES: '0' }).spoolMaxBytes, undefined)
  assert.equal(loadConfig({ PUSHLINE_SPOOL_MAX_BYTES: '5000' }).spoolMaxBytes, 5000)
  const err = configError({ PUSHLINE_SPOOL_MAX_BYTES: '-1', PUSHLINE_KAFKA_COMPRESSION: 'zstd', PUSHLINE_KAFKA_BATCH_BYTES: '2000000', PUSHLINE_KAFKA_GZIP_LEVEL: '0' })
  for (const name of ['PUSHLINE_SPOOL_MAX_BYTES', 'PUSHLINE_KAFKA_COMPRESSION', 'PUSHLINE_KAFKA_BATCH_BYTES', 'PUSHLINE_KAFKA_GZIP_LEVEL']) assert.match(err.message, new RegExp(name))
})

test('anonymous mode with Redis (a shared deployment) is refused unless PUSHLINE_ALLOW_ANONYMOUS_SHARED allows it', () => {
  const shared = { PUSHLINE_ALLOW_ANONYMOUS: 'true', PUSHLINE_REDIS_URL: 'redis://127.0.0.1:6379' }
  const err = configError(shared)
  assert.match(err.message, /PUSHLINE_ALLOW_ANONYMOUS with PUSHLINE_REDIS_URL/)
  assert.match(err.message, /PUSHLINE_ALLOW_ANONYMOUS_SHARED=true/)
  assert.equal(loadConfig({ ...shared, PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true' }).allowAnonymous, true)
  assert.equal(loadConfig({ PUSHLINE_ALLOW_ANONYMOUS: 'true' }).allowAnonymous, true, 'embedded mode needs no second setting')
  assert.equal(loadConfig({ PUSHLINE_REDIS_URL: 'redis://127.0.0.1:6379', PUSHLINE_ALLOW_ANONYMOUS_SHARED: 'true' }).allowAnonymous, false, 'the second setting alone turns nothing on')
})

test('the Sentinel pair gives a Sentinel target and cluster mode; passwords go with it', () => {
  const c = loadConfig({
    PUSHLINE_REDIS_SENTINELS: 's1:26379, 10.0.0.2:26380,[::1]:26381',
    PUSHLINE_REDIS_SENTINEL_MASTER: 'pushline',
    PUSHLINE_REDIS_PASSWORD: 'data-pw',
    PUSHLINE_REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
    PUSHLINE_ROLE: 'broker'
  })
  assert.equal(c.mode, 'cluster')
  assert.equal(c.redisUrl, undefined)
  assert.deepEqual(c.redis, {
    kind: 'sentinel',
    sentinels: [{ host: 's1', port: 26379 }, { host: '10.0.0.2', port: 26380 }, { host: '::1', port: 26381 }],
    master: 'pushline',
    password: 'data-pw',
    sentinelPassword: 'sentinel-pw',
    commandTimeoutMs: 2000
  })
})

test('Redis is reached by URL or by Sentinels, never both, and the Sentinel settings come as a pair', () => {
  const both = configError({ PUSHLINE_REDIS_URL: 'redis://r:6379', PUSHLINE_REDIS_SENTINELS: 's1:26379', PUSHLINE_REDIS_SENTINEL_MASTER: 'm' })
  assert.match(both.message, /PUSHLINE_REDIS_URL and PUSHLINE_REDIS_SENTINELS are two ways to reach Redis: set one, not both/)
  const noMaster = configError({ PUSHLINE_REDIS_SENTINELS: 's1:26379' })
  assert.match(noMaster.message, /PUSHLINE_REDIS_SENTINELS and PUSHLINE_REDIS_SENTINEL_MASTER go together/)
  const noSentinels = configError({ PUSHLINE_REDIS_SENTINEL_MASTER: 'm' })
  assert.match(noSentinels.message, /PUSHLINE_REDIS_SENTINELS and PUSHLINE_REDIS_SENTINEL_MASTER go together/)
  assert.match(configError({ PUSHLINE_REDIS_SENTINEL_PASSWORD: 'x', PUSHLINE_REDIS_URL: 'redis://r:6379' }).message, /PUSHLINE_REDIS_SENTINEL_PASSWORD needs PUSHLINE_REDIS_SENTINELS/)
  assert.match(configError({ PUSHLINE_REDIS_PASSWORD: 'x' }).message, /PUSHLINE_REDIS_PASSWORD needs PUSHLINE_REDIS_URL or PUSHLINE_REDIS_SENTINELS/)
  assert.match(configError({ PUSHLINE_REDIS_SENTINELS: 's1', PUSHLINE_REDIS_SENTINEL_MASTER: 'm' }).message, /PUSHLINE_REDIS_SENTINELS "s1" is not host:port/)
  assert.match(configError({ PUSHLINE_REDIS_SENTINELS: 's1:1', PUSHLINE_REDIS_SENTINEL_MASTER: 'a b' }).message, /PUSHLINE_REDIS_SENTINEL_MASTER must be 1 to 64 characters/)
  assert.match(configError({ PUSHLINE_ROLE: 'api' }).message, /set PUSHLINE_REDIS_URL \(or PUSHLINE_REDIS_SENTINELS\)/)
  // A password never appears in an error.
  const withSecret = configError({ PUSHLINE_REDIS_PASSWORD: 'hunter2-secret', PUSHLINE_REDIS_URL: 'redis://r:6379', PUSHLINE_REDIS_SENTINELS: 's:1', PUSHLINE_REDIS_SENTINEL_MASTER: 'm' })
  assert.ok(!withSecret.message.includes('hunter2-secret'), withSecret.message)
})

test('the replica wait takes 0 to 16 replicas and a timeout of 1 ms to 60 s', () => {
  assert.equal(loadConfig({ PUSHLINE_REDIS_WAIT_REPLICAS: '0' }).redisWaitReplicas, 0)
  assert.match(configError({ PUSHLINE_REDIS_WAIT_REPLICAS: '17' }).message, /PUSHLINE_REDIS_WAIT_REPLICAS must be between 0 and 16/)
  assert.match(configError({ PUSHLINE_REDIS_WAIT_TIMEOUT_MS: '0' }).message, /PUSHLINE_REDIS_WAIT_TIMEOUT_MS must be between 1 and 60000/)
})

test('the API thread is on by default in role all with Redis, off without Redis and in the other roles', () => {
  const redis = { PUSHLINE_REDIS_URL: 'redis://localhost:6379' }
  assert.equal(loadConfig(redis).apiThread, true)
  assert.equal(loadConfig({ ...redis, PUSHLINE_REDIS_URL: undefined, PUSHLINE_REDIS_SENTINELS: 'localhost:26379', PUSHLINE_REDIS_SENTINEL_MASTER: 'mymaster' }).apiThread, true)
  assert.equal(loadConfig({}).apiThread, false)
  assert.equal(loadConfig({ ...redis, PUSHLINE_API_THREAD: 'false' }).apiThread, false)
  for (const role of ['broker', 'api']) {
    assert.equal(loadConfig({ ...redis, PUSHLINE_ROLE: role }).apiThread, false, role)
    assert.equal(loadConfig({ ...redis, PUSHLINE_ROLE: role, PUSHLINE_API_THREAD: 'true' }).apiThread, false, `${role}: ignored`)
  }
  assert.equal(loadConfig({}).apiThreadNice, 10)
  assert.equal(loadConfig({ ...redis, PUSHLINE_API_THREAD_NICE: '19' }).apiThreadNice, 19)
})

test('PUSHLINE_API_THREAD=true without Redis is refused; its nice increment is 0 to 19', () => {
  const err = configError({ PUSHLINE_API_THREAD: 'true' })
  assert.match(err.message, /PUSHLINE_API_THREAD=true needs PUSHLINE_REDIS_URL/)
  assert.match(configError({ PUSHLINE_API_THREAD: 'maybe' }).message, /PUSHLINE_API_THREAD must be true or false/)
  assert.match(configError({ PUSHLINE_API_THREAD_NICE: '20' }).message, /PUSHLINE_API_THREAD_NICE must be between 0 and 19/)
  assert.match(configError({ PUSHLINE_API_THREAD_NICE: '-1' }).message, /PUSHLINE_API_THREAD_NICE must be between 0 and 19/)
})
