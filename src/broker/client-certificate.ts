import type { Client } from 'aedes'
import { TLSSocket, type PeerCertificate } from 'node:tls'
import type { ClientIdField } from '../config/settings.ts'
import type { CertificateCheck } from '../registry/device-service.ts'
import type { Identity } from './topic-acl.ts'

// Login with an X.509 client certificate on the TLS listeners. The TLS layer has verified the chain against the
// client CA bundle (and CRL) without refusing the handshake; here a CONNECT without a password is let in when its
// certificate passed, names exactly one device id equal to the client id, and the registry says that device is
// enabled and was not revoked after the certificate was issued. Every refusal is CONNACK 5 (not authorized).

export interface CertificateLoginOptions {
  readonly idField: ClientIdField
  readonly check: (deviceId: string, issuedAt: number) => Promise<CertificateCheck>
}

export type CertificateLogin =
  | { readonly ok: true, readonly identity: Identity }
  | { readonly ok: false, readonly message: string }

/**
 * A certificate the TLS layer refused or that names the wrong id is refused at once (`refused`); otherwise the
 * registry check, which the caller runs when it has room for its Redis command (`check`). A refusal must not wait
 * for that room: under a full connect queue it would be answered `busy` instead of CONNACK 5, and the device would
 * retry a certificate that can never pass.
 */
export type CertificateAttempt =
  | { readonly refused: string }
  | { readonly check: () => Promise<CertificateLogin> }

export interface CertificateLogins {
  /** Undefined when the client presented no certificate (or came in on a plain listener): log in with a token. */
  login (client: Client, clientId: string): CertificateAttempt | undefined
}

/** The TLS socket under a client: its connection for MQTT over TLS, its upgrade request's for WebSocket over TLS. */
function tlsSocketOf (client: Client): TLSSocket | undefined {
  const socket = client.req?.socket ?? client.conn
  return socket instanceof TLSSocket ? socket : undefined
}

/** The device ids a certificate names in the configured field. */
function namedIds (cert: PeerCertificate, field: ClientIdField): string[] {
  if (field === 'cn') {
    const cn = cert.subject?.CN as string | string[] | undefined
    return cn === undefined ? [] : Array.isArray(cn) ? cn : [cn]
  }
  // "DNS:a, DNS:b, IP Address:…"; a name with a comma or quote comes quoted, and is no device id anyway.
  return (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4))
}

export function createCertificateLogins (opts: CertificateLoginOptions): CertificateLogins {
  const refuse = (message: string): CertificateLogin => ({ ok: false, message })
  const fieldName = opts.idField === 'cn' ? 'subject CN' : 'DNS subject alternative name'

  return {
    login (client, clientId) {
      const socket = tlsSocketOf(client)
      if (socket === undefined) return undefined
      const cert = socket.getPeerCertificate()
      if (cert === null || Object.keys(cert).length === 0) return undefined
      if (!socket.authorized) return { refused: `client certificate not accepted: ${String(socket.authorizationError)}` }
      const ids = namedIds(cert, opts.idField)
      if (ids.length !== 1) return { refused: `client certificate must name one device id in its ${fieldName}, it names ${ids.length}` }
      const deviceId = ids[0] as string
      if (deviceId !== clientId) return { refused: `client certificate is for device ${deviceId.slice(0, 64)}, not for client id ${clientId}` }
      const issuedAt = Date.parse(cert.valid_from)
      return {
        check: async () => await opts.check(deviceId, issuedAt).then((result) => result.ok
          ? { ok: true, identity: { kind: 'device', deviceId, groups: result.groups } }
          : refuse(`client certificate refused: ${result.reason === 'unknown_device' ? 'no such device' : result.reason === 'disabled' ? 'device disabled' : 'device revoked after the certificate was issued'}`))
      }
    }
  }
}
