// How the registry ends a device's live connection without knowing where it is.
// The broker side implements it: locally in one process, through Redis pub/sub across nodes.

export type KickReason = 'revoked' | 'disabled' | 'deleted' | 'kicked' | 'takeover'

/** Narrows a kick to one connection: the device's connection on `nodeId` whose presence epoch is `epoch`. */
export interface KickTarget {
  readonly nodeId: string
  readonly epoch: number
}

export interface ConnectionControl {
  /** Closes the device's connection on whichever node holds it (only `target`'s, if given); resolves once the order is out. */
  kick (deviceId: string, reason: KickReason, target?: KickTarget): Promise<void>
}
