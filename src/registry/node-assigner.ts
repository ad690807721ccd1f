// Picks the broker node a device should connect to when it gets a token.

export interface BrokerAddress {
  readonly nodeId: string
  readonly mqtt: string
  readonly ws: string
  /** Present when the node serves MQTT over TLS and WebSocket over TLS. */
  readonly mqtts?: string
  readonly wss?: string
}

export interface NodeAssigner {
  assign (deviceId: string): Promise<BrokerAddress>
}
