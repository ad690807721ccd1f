import type { TestContext } from 'node:test'
import { waitUntil } from './eventually.ts'
import { startTestPlatform, uniquePrefix, type TestPlatform } from './platform.ts'
import { startPlatformProcess, type PlatformProcess } from './process.ts'
import { redisUrl } from './services.ts'

// A cluster as operators run it: broker nodes as separate processes and the API as its own process,
// all sharing one Redis (under a key prefix unique to the test).

export interface TestNode extends PlatformProcess {
  readonly nodeId: string
  readonly mqttPort: number
  readonly httpPort: number
  readonly mqttUrl: string
}

export interface TestCluster {
  readonly api: TestPlatform
  readonly nodes: TestNode[]
  readonly prefix: string
  /** Waits until the API lists every given node as live. */
  waitForNodes (ids: readonly string[]): Promise<void>
  /**
   * Starts node i again after it was killed, with its node id and its MQTT port, as an operator restarts a crashed
   * node: the devices holding tokens for it reconnect to the same address. Replaces nodes[i].
   */
  restartNode (i: number): Promise<TestNode>
  stats (): Promise<{ online: number, nodes: Array<{ nodeId: string, sessions: number, presence: number, drift: number }> }>
}

export interface TestClusterOptions {
  readonly nodes: number
  readonly heartbeatMs: number
  /** Settings of the API and every node. */
  readonly env?: Record<string, string>
  /** Settings of the broker nodes only: the same for all, or per node i (from 0). */
  readonly nodeEnv?: Record<string, string> | ((i: number) => Record<string, string>)
  /** How every process reaches Redis (default: the test Redis by URL). */
  readonly redisEnv?: Record<string, string>
}

export async function startTestCluster (t: TestContext, opts: TestClusterOptions): Promise<TestCluster> {
  const prefix = uniquePrefix()
  const redisEnv = opts.redisEnv ?? { PUSHLINE_REDIS_URL: redisUrl() }
  const shared = { PUSHLINE_HEARTBEAT_MS: String(opts.heartbeatMs), PUSHLINE_TOKEN_RATE_ADDRESS_PER_MINUTE: '10000000', PUSHLINE_TOKEN_RATE_DEVICE_PER_MINUTE: '100000', ...opts.env }
  const api = await startTestPlatform(t, { clusterPrefix: prefix, redisEnv, env: { PUSHLINE_ROLE: 'api', ...shared } })
  const startNode = async (i: number, mqttPort = 0): Promise<TestNode> => {
    const nodeId = `${prefix.replace(/[^A-Za-z0-9]/g, '')}-n${i + 1}`
    const p = await startPlatformProcess(t, {
      PUSHLINE_ROLE: 'broker',
      PUSHLINE_NODE_ID: nodeId,
      ...redisEnv,
      PUSHLINE_REDIS_PREFIX: prefix,
      PUSHLINE_PUBLIC_HOST: '127.0.0.1',
      ...shared,
      ...(typeof opts.nodeEnv === 'function' ? opts.nodeEnv(i) : opts.nodeEnv),
      PUSHLINE_MQTT_PORT: String(mqttPort)
    })
    return { ...p, nodeId, mqttUrl: `mqtt://127.0.0.1:${p.mqttPort}` }
  }
  const nodes = await Promise.all(Array.from({ length: opts.nodes }, async (_, i) => await startNode(i)))
  const cluster: TestCluster = {
    api,
    nodes,
    prefix,
    async waitForNodes (ids) {
      await waitUntil(`nodes ${ids.join(', ')} all live`, async () => {
        const listed = new Set(((await api.api('GET', '/v1/admin/nodes')).body.nodes as Array<{ nodeId: string }>).map((n) => n.nodeId))
        return ids.every((id) => listed.has(id))
      })
    },
    async restartNode (i) {
      const old = nodes[i]
      if (old === undefined) throw new Error(`no node ${i}`)
      const node = await startNode(i, old.mqttPort)
      nodes[i] = node
      return node
    },
    async stats () {
      return (await api.api('GET', '/v1/admin/stats')).body
    }
  }
  await cluster.waitForNodes(nodes.map((n) => n.nodeId))
  return cluster
}

/** Creates n devices `{tag}-{i}` through the API, 50 at a time, and issues each a token: id -> token. */
export async function provisionMany (cluster: TestCluster, n: number, tag: string): Promise<Map<string, string>> {
  const tokens = new Map<string, string>()
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
      const id = `${tag}-${i + j}`
      tokens.set(id, (await cluster.api.provision(id)).token)
    }))
  }
  return tokens
}
