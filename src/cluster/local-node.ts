import type { Logger } from 'pino'
import type { BrokerNode } from '../broker/create-broker-node.ts'
import type { KickReason, KickTarget } from '../registry/connection-control.ts'
import type { ClusterMember } from './cluster-member.ts'

// This node's broker and cluster member as the parts built before them see them. The broker authenticates
// through the registry and rides on the pub/sub transport, while the registry's kicks and the transport's gaps
// act on the broker: those parts get this handle, which serves the broker once it is built. Until then there is
// no connection on this node to close and no session to resend.

export interface LocalNode {
  kick (deviceId: string, reason: KickReason, target?: KickTarget): void
  /** Drops a deleted device's stored session. */
  forgetSession (deviceId: string): Promise<void>
  /** Resends stored QoS 1 messages to persistent sessions (after a pub/sub gap); resolves to how many. */
  resendStored (): Promise<number>
  serve (parts: { readonly broker: BrokerNode, readonly member: ClusterMember }): void
}

export function createLocalNode (opts: { readonly nodeId: string, readonly logger: Logger }): LocalNode {
  let parts: { readonly broker: BrokerNode, readonly member: ClusterMember } | undefined
  return {
    serve (p) { parts = p },
    // Revoke, disable and delete close the device wherever it is; a takeover or an operator's kick only the
    // connection presence named (a newer one of the device stays).
    kick (deviceId, reason, target) {
      if (parts === undefined) return
      const { broker, member } = parts
      if (target !== undefined) {
        if (target.nodeId === opts.nodeId) member.closeReplaced(deviceId, target.epoch, reason === 'kicked').catch(() => {})
        return
      }
      member.markKicked(deviceId)
      if (reason !== 'deleted') {
        broker.kickLocal(deviceId)
        return
      }
      // Every node forgets a deleted device's session; in cluster mode they share one store, so repeats find nothing.
      broker.forgetDevice(deviceId).catch((err: Error) => {
        opts.logger.warn({ event: 'forget_session_failed', deviceId, err: err.message }, 'could not drop a deleted device\'s session')
      })
    },
    async forgetSession (deviceId) { await parts?.broker.forgetDevice(deviceId) },
    async resendStored () { return await parts?.broker.resendStored() ?? 0 }
  }
}
