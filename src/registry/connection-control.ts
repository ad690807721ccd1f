// How the registry ends a device's live connection without knowing where it is.
// The broker side implements it: locally in one process, through Redis pub/sub across nodes.

export type KickReason = 'revoked' | 'disabled' | 'deleted' | 'kicked'

export interface ConnectionControl {
  /** Closes the device's connection on whichever node holds it; resolves once the order is out. */
  kick (deviceId: string, reason: KickReason): Promise<void>
}
