/** @module engine/proxy-stage — a bind's PROXY protocol stage: each connection's header read before its first request (from allowed peers only, within timeouts.header), refused ones closed, counted and logged by reason (a warning, throttled, for what a misconfigured proxy causes). */

import { PROXY_ERRORS, PROXY_HINT_MALFORMED, PROXY_HINTS, PROXY_REASONS, ProxyError } from "../http/codes.ts";
import { type ProxyMode, ProxyParser } from "../http/proxy-protocol.ts";
import type { ClientAddress } from "../observe/access.ts";
import { clientLabel } from "../observe/access.ts";
import type { Connection } from "./connection.ts";
import { counters, Timeout } from "./counters.ts";
import { type ProxiedPeer, type ProxyPolicy, proxiedAddress } from "./peer.ts";
import { recurred, Throttle } from "./throttle.ts";

/** What the stage needs of its server. */
export interface ProxyStageHost {
  readonly proxies: ProxyPolicy;
  /** Seconds; the header must be complete this long after the connection was accepted (0: no limit). */
  readonly timeouts: { readonly header: number };
  /** Whether a debug line would be written. */
  readonly logLevel: number;
  /** The bind, for messages (http://host:port, unix:/path). */
  readonly label: string;
  /** Coarse clock in seconds. */
  readonly now: number;
  debug(line: string): void;
  warning(line: string): void;
  /** The header named the connection's peer: serve its requests as from `address`. */
  proxied(conn: Connection, address: ClientAddress): void;
}

interface Waiting {
  readonly parser: ProxyParser;
  /** Refused: closing, its bytes ignored, until its close is seen. */
  refused: boolean;
  /** When the connection was accepted (performance.now() seconds). */
  readonly since: number;
  readonly peer: ClientAddress;
}

/**
 * Reads the PROXY header (HAProxy's PROXY protocol, v1 and v2) that starts every connection of
 * a bind that asks for one. Until it is complete the connection has no exchange and its bytes
 * come here; a malformed, missing, late or unallowed header closes it without a response
 * (spec §2: a receiver must not guess), counted under its reason's name.
 */
export class ProxyStage {
  private readonly host: ProxyStageHost;
  readonly mode: ProxyMode;
  private readonly waiting = new Map<Connection, Waiting>();
  /** Connections refused, by ProxyError code (PROXY_REASONS names them). */
  readonly refused: number[] = new Array(PROXY_REASONS.length).fill(0);
  /** The warning for refusals a misconfigured proxy causes. */
  private readonly misconfigured = new Throttle();

  constructor(host: ProxyStageHost, mode: ProxyMode) {
    this.host = host;
    this.mode = mode;
  }

  /** Connections whose header is not complete yet (or that were refused and have not closed). */
  get size(): number {
    return this.waiting.size;
  }

  /** A connection was admitted: read its header first, if its peer may send one. */
  begin(conn: Connection, peer: ClientAddress): void {
    const w: Waiting = { parser: new ProxyParser(this.mode), refused: false, since: performance.now() / 1000, peer };
    this.waiting.set(conn, w);
    // On a unix bind the socket file's permissions say who may connect (and so send a header).
    if (typeof peer !== "string" && !this.host.proxies.proxyFrom.trustsPeer(peer[0]))
      this.refuse(conn, w, ProxyError.PROXY_UNTRUSTED);
  }

  /**
   * Bytes of a connection: false when its header is done (they are the connection's own). The
   * bytes kept here (the header, and all of a refused connection's) are counted as received
   * here: only those handed on reach Connection.onData, which counts its own.
   */
  read(conn: Connection, chunk: Buffer): boolean {
    const w = this.waiting.get(conn);
    if (w === undefined) return false;
    if (w.refused) {
      counters.bytesIn += chunk.length;
      return true;
    }
    const n = w.parser.execute(chunk, 0, chunk.length);
    if (n <= 0) {
      counters.bytesIn += chunk.length;
      if (n < 0) this.refuse(conn, w, -n);
      return true;
    }
    counters.bytesIn += n;
    this.waiting.delete(conn);
    const header = w.parser.header as NonNullable<ProxyParser["header"]>;
    const proxied: ProxiedPeer = { socketPeer: w.peer, header };
    conn.proxy = proxied;
    this.host.proxied(conn, proxiedAddress(header, w.peer));
    // The first request may have come with the header.
    if (n < chunk.length) {
      if (!conn.closed) conn.onData(chunk.subarray(n));
      else counters.bytesIn += chunk.length - n;
    }
    return true;
  }

  /** Close the connections whose header is late (timeouts.header from their accept). */
  tick(now: number): void {
    const limit = this.host.timeouts.header;
    if (limit <= 0) return;
    for (const [conn, w] of this.waiting) {
      if (!w.refused && now - w.since >= limit) {
        counters.timedOut(Timeout.PROXY_HEADER);
        this.refuse(conn, w, ProxyError.PROXY_TIMEOUT);
      }
    }
  }

  /** A connection closed: true when it was admitted here and never served (one still waiting is counted as closed early). */
  closed(conn: Connection): boolean {
    const w = this.waiting.get(conn);
    if (w === undefined) return false;
    this.waiting.delete(conn);
    if (!w.refused) this.count(w.peer, ProxyError.PROXY_CLOSED);
    return true;
  }

  /** Stop: cut every connection still waiting for its header. */
  terminateAll(): void {
    for (const c of [...this.waiting.keys()]) c.terminate();
  }

  private refuse(conn: Connection, w: Waiting, code: number): void {
    w.refused = true;
    this.count(w.peer, code);
    conn.terminate();
  }

  private count(peer: ClientAddress, code: number): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
    counters.proxyRefusal(code);
    const what = `closed connection from ${clientLabel(peer)}: ${PROXY_ERRORS[code]} (${PROXY_REASONS[code]})`;
    if (this.host.logLevel <= 10) this.host.debug(what);
    // A header missing, malformed, of the other version or from an unlisted peer is what a proxy
    // set up unlike this bind sends on every connection, each a 502 or a failed check at the
    // proxy: said at the default level, at most every WARN_EVERY seconds. A connection that
    // closes or times out before any header (a TCP check, a scan) says nothing of the proxy.
    const hint = PROXY_HINTS[code] ?? PROXY_HINT_MALFORMED;
    if (hint === "") return;
    const n = this.misconfigured.due(this.host.now);
    if (n > 0) this.host.warning(`${what} on ${this.host.label}; ${hint}${recurred(n)}`);
  }
}
