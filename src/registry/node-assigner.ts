// Picks the broker node a device should connect to when it gets a token.

export interface BrokerAddress {
  readonly nodeId: string
  readonly mqtt: string
  readonly ws: string
}

export interface NodeAssigner {
  assign (deviceId: string): Promise<BrokerAddress>
}

/** Single node: every device is sent to this process. */
export function createSelfAssigner (address: () => BrokerAddress): NodeAssigner {
  return { assign: async () => address() }
}
