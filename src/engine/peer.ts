/** @module engine/peer — who a connection's peer is: a server's trusted-proxy policy (forwarding fields, PROXY protocol senders), compiled once, and what a PROXY header said about a connection. */

import type { Proxies } from "../config/limits.ts";
import { ConfigError } from "../errors.ts";
import { AddressSet } from "../http/address.ts";
import { type Forwarded, forwardingValues, honourMask, resolveForwarded } from "../http/forwarded.ts";
import { PP2_CLIENT_SSL, type ProxyHeader } from "../http/proxy-protocol.ts";
import type { ClientAddress } from "../observe/access.ts";

/** What a PROXY header said about a connection, and the socket's own peer it replaced. */
export interface ProxiedPeer {
  /** The socket's peer: the proxy. */
  readonly socketPeer: ClientAddress;
  readonly header: ProxyHeader;
}

/** A server's trusted proxies, checked once: the sets on bytes and the fields' mask. */
export class ProxyPolicy {
  /** Peers whose forwarding fields are believed, and the hops walked past. */
  readonly forwardedFrom: AddressSet;
  readonly allowUnix: boolean;
  /** The honoured fields' bits (http/forwarded's Honour). */
  readonly honour: number;
  readonly strip: boolean;
  /** Peers that may send a PROXY header. */
  readonly proxyFrom: AddressSet;

  constructor(p: Proxies) {
    const set = (key: string, entries: readonly string[]): AddressSet => {
      const s = AddressSet.parse(entries);
      if (typeof s === "string") throw new ConfigError(`${key}: ${s}`);
      return s;
    };
    this.forwardedFrom = set("forwarded_allow_ips", p.forwardedAllowIps);
    this.proxyFrom = set("proxy_protocol_from", p.proxyProtocolFrom);
    this.allowUnix = p.forwardedAllowUnix;
    this.honour = honourMask(p.forwardedHeaders);
    this.strip = p.forwardedStripUntrusted;
  }

  /**
   * Whether the forwarding fields of a connection from `peer` are read: decided once per
   * connection. forwarded_allow_unix trusts the peers of a unix: bind, whose socket only local
   * processes reach; a PROXY header that names a UNIX-family client on a TCP bind says where the
   * proxy's client was, not that this socket is local, so that client is not trusted.
   */
  trusts(peer: ClientAddress, proxy: ProxiedPeer | null): boolean {
    if (this.honour === 0) return false;
    if (typeof peer !== "string") return this.forwardedFrom.trustsPeer(peer[0]);
    return this.allowUnix && (proxy === null || typeof proxy.socketPeer === "string");
  }

  /** The client the honoured fields of a trusted peer's request name, or null when they name none. */
  forwarded(headers: ReadonlyArray<readonly [string, string]>): Forwarded | null {
    const values = forwardingValues(headers, this.honour);
    return values === null ? null : resolveForwarded(values, this.forwardedFrom);
  }
}

/** The address a PROXY header gives the connection's requests: the client it names, else the socket's peer. */
export function proxiedAddress(header: ProxyHeader, socketPeer: ClientAddress): ClientAddress {
  if (!header.proxied) return socketPeer;
  return header.family === "UNIX" ? header.source : [header.source, header.sourcePort];
}

/**
 * What a v2 header's PP2_TYPE_SSL TLV says of the client's TLS connection to the proxy, in
 * mod_ssl's names (engine/tls gives a direct TLS connection's): null unless the client used TLS
 * (PP2_CLIENT_SSL, spec §2.2.7). The client certificate's CN only when it verified.
 */
export function proxyTlsFacts(header: ProxyHeader): Record<string, string> | null {
  const ssl = header.ssl;
  if (ssl === null || (ssl.client & PP2_CLIENT_SSL) === 0) return null;
  const facts: Record<string, string> = { SSL_PROTOCOL: ssl.version ?? "", SSL_CIPHER: ssl.cipher ?? "" };
  if (ssl.verify === 0 && ssl.cn !== null) facts.SSL_CLIENT_S_DN_CN = ssl.cn;
  return facts;
}
