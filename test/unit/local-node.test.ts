import assert from 'node:assert/strict'
import { test } from 'node:test'
import pino from 'pino'
import type { BrokerNode } from '../../src/broker/create-broker-node.ts'
import type { ClusterMember } from '../../src/cluster/cluster-member.ts'
import { createLocalNode } from '../../src/cluster/local-node.ts'

test('kicks and resends before the broker is built act on nothing; once served they reach the broker and the member', { timeout: 30_000 }, async () => {
  const calls: string[] = []
  const broker = {
    kickLocal: (id: string) => { calls.push(`kick ${id}`); return true },
    forgetDevice: async (id: string) => { calls.push(`forget ${id}`) },
    resendStored: async () => { calls.push('resend'); return 3 }
  } as unknown as BrokerNode
  const member = {
    markKicked: (id: string) => { calls.push(`marked ${id}`) },
    closeReplaced: async (id: string, epoch: number, asKick?: boolean) => { calls.push(`replaced ${id} ${epoch} ${String(asKick)}`); return true }
  } as unknown as ClusterMember
  const local = createLocalNode({ nodeId: 'n1', logger: pino({ level: 'silent' }) })

  local.kick('d', 'revoked')
  await local.forgetSession('d')
  assert.equal(await local.resendStored(), 0)
  assert.deepEqual(calls, [])

  local.serve({ broker, member })
  local.kick('d', 'revoked')
  local.kick('d', 'deleted')
  local.kick('d', 'takeover', { nodeId: 'n2', epoch: 4 })
  local.kick('d', 'kicked', { nodeId: 'n1', epoch: 5 })
  await local.forgetSession('e')
  assert.equal(await local.resendStored(), 3)
  assert.deepEqual(calls, ['marked d', 'kick d', 'marked d', 'forget d', 'replaced d 5 true', 'forget e', 'resend'])
})
