// Picks the broker node a device should connect to when it gets a token.

export interface BrokerAddress {
  readonly nodeId: string
  readonly mqtt: string
  readonly ws: string
}

export interface NodeAssigner {
  assign (deviceId: string): Promise<BrokerAddress>
}
