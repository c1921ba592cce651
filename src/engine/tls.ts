/** @module engine/tls — what a TLS connection tells about itself and its client certificate, in mod_ssl's names (SSL_PROTOCOL, SSL_CLIENT_VERIFY, SSL_CLIENT_S_DN, …). */

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
