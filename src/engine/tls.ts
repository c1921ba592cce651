/** @module engine/tls — what a TLS connection tells about itself and its client certificate, in mod_ssl's names (SSL_PROTOCOL, SSL_CLIENT_VERIFY, SSL_CLIENT_S_DN, …), and why a handshake failed. */

import type { Socket } from "bun";

/** The TLS facts of `socket`: protocol, cipher, and the client certificate's verdict and names. */
export function tlsFacts(socket: Socket<unknown>): Record<string, string> {
  const facts: Record<string, string> = {
    SSL_PROTOCOL: socket.getTLSVersion() ?? "",
    SSL_CIPHER: socket.getCipher()?.name ?? "",
  };
  const cert = socket.getPeerCertificate();
  if (cert === null || cert === undefined || cert.subject === undefined) facts.SSL_CLIENT_VERIFY = "NONE";
  else if (!socket.authorized) {
    facts.SSL_CLIENT_VERIFY = `FAILED:${socket.getAuthorizationError()?.message ?? "unverified"}`;
  } else {
    facts.SSL_CLIENT_VERIFY = "SUCCESS";
    facts.SSL_CLIENT_S_DN = distinguishedName(cert.subject);
    facts.SSL_CLIENT_I_DN = distinguishedName(cert.issuer);
    facts.SSL_CLIENT_M_SERIAL = cert.serialNumber;
    facts.SSL_CLIENT_V_END = cert.valid_to;
  }
  return facts;
}

/** RFC 4514 string of a certificate name: most specific first, special characters escaped. */
function distinguishedName(name: object | undefined): string {
  if (name === undefined) return "";
  const parts: string[] = [];
  for (const [key, value] of Object.entries(name)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      const escaped = String(v)
        .replace(/[,+"\\<>;=]/g, "\\$&")
        .replace(/^[ #]|[ ]$/g, "\\$&");
      parts.push(`${key}=${escaped}`);
    }
  }
  return parts.reverse().join(",");
}

/**
 * Why TLS handshakes fail: the labels of bunwsgi_tls_handshake_failures_total{reason}, a fixed
 * few so that a scanner cannot grow the page. `plain_http`: an HTTP request sent to the TLS port
 * (nginx answers it 400; Bun.listen has no hook before the handshake, so it is closed);
 * `protocol_version`: TLS 1.0 or 1.1, or SSL; `no_shared_cipher`: no cipher, group or signature
 * algorithm in common; `no_application_protocol`: ALPN offered without http/1.1 (RFC 7301 §3.2);
 * `client_certificate`: none, or one that does not verify, where `client_auth` requires one;
 * `closed`: the client went before finishing (a TCP health check, a port scan); `other`: the
 * rest (bytes that are no TLS record), the error log's debug line naming BoringSSL's reason.
 */
export const HANDSHAKE_FAILURES = [
  "plain_http",
  "protocol_version",
  "no_shared_cipher",
  "no_application_protocol",
  "client_certificate",
  "closed",
  "other",
] as const;

/** BoringSSL's reasons (an error message's last part), each to its HANDSHAKE_FAILURES index. */
const FAILURE_OF_REASON: Readonly<Record<string, number>> = {
  HTTP_REQUEST: 0,
  HTTPS_PROXY_REQUEST: 0,
  UNSUPPORTED_PROTOCOL: 1,
  NO_SHARED_CIPHER: 2,
  NO_SHARED_GROUP: 2,
  WRONG_CURVE: 2,
  NO_COMMON_SIGNATURE_ALGORITHMS: 2,
  NO_APPLICATION_PROTOCOL: 3,
  PEER_DID_NOT_RETURN_A_CERTIFICATE: 4,
  CERTIFICATE_VERIFY_FAILED: 4,
};

/** The HANDSHAKE_FAILURES index of a failed handshake's `error` (Bun's: an OpenSSL error string, or ECONNRESET when the client left). */
export function handshakeFailure(error: Error | null): number {
  if (error === null) return HANDSHAKE_FAILURES.length - 1;
  if ((error as { code?: string }).code === "ECONNRESET") return 5;
  return FAILURE_OF_REASON[error.message.slice(error.message.lastIndexOf(":") + 1)] ?? HANDSHAKE_FAILURES.length - 1;
}
