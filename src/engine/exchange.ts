/** @module engine/exchange — the contracts around a connection: the Exchange (one app-side request/response handler per connection), the narrow port that side sees of the connection, and what the connection needs of its server. */

import type { Limits, Timeouts } from "../config/limits.ts";
import type { BodyLimits } from "../http/body.ts";
import type { HeadLimits, RequestParser } from "../http/parser.ts";
import type { Health } from "./health.ts";
import type { Input } from "./input.ts";
import type { Output } from "./output.ts";
import type { ProxiedPeer } from "./peer.ts";

/**
 * The app side of a connection: it turns each parsed request into a response (a WSGI handler;
 * later a fetch adapter). The connection sequences requests and owns the bytes; it never
 * reaches into the app side past this.
 */
export interface Exchange {
  /**
   * Answer the request whose head the parser found at buf[start…]; the bytes are valid until
   * this returns. A promise makes the connection wait for it before the next request.
   */
  begin(buf: Buffer, start: number): void | Promise<void>;
  /** The connection refused a request before it reached the app (400, 408, 413, 501, …): answer and log it. */
  refuse(status: number, message: string, requestline: string): void;
  /** A chunked request body ended with these trailer fields. */
  trailers(fields: Array<[string, string]>): void;
  /** The connection closed while a response was in progress: end its result now. */
  lost(): void;
  /**
   * The client sent FIN while a response was in progress: it sends nothing more, and may have
   * closed altogether (a FIN says the same for both); the response still goes out.
   */
  halfClosed(): void;
  /**
   * A hook threw past its own error handling (a bug in bunwsgi or in an overridden hook): the
   * request is answered as any app error is (500 before the head, else cut) and ends, logged and
   * counted, instead of leaving the client an empty reply and the in-flight gauge one too high.
   */
  crashed(err: unknown): void;
  /** A stop gave up waiting for the response of a cut connection: log it as abandoned. */
  abandon(waited: number): void;
  /**
   * The app's time (`limit` seconds) is up: end its result and log it; true when a 503 was
   * sent (nothing had been), false when the connection must be cut.
   */
  timedOut(limit: number): boolean;
  /** The response asked for the connection to close after it. */
  readonly closeAfter: boolean;
  /** The response head has gone out (a 100 Continue is then pointless). */
  readonly headersSent: boolean;
  /** Write a line to the error log. */
  logError(msg: string): void;
  /**
   * Write a line to the error log at info level: what a client did, not a fault of the server's
   * or the app's (a client gone mid-body, one too slow for a deadline), which an operator
   * counting ERROR lines must not count (gevent: a client issue, not a server problem).
   */
  logInfo(msg: string): void;
  /** Write a line to the error log at debug level (log.level = "debug"), else nothing. */
  logDebug(msg: string): void;
  /** The peer, for messages: "host:port" or the socket's path. */
  clientLabel(): string;
}

/** What the app side sees of its connection. */
export interface ConnectionPort {
  readonly parser: RequestParser;
  /** The current request's body, and an upgrade request's raw stream (null otherwise). */
  readonly input: Input;
  readonly rawInput: Input | null;
  /** The response's bytes. */
  readonly out: Output;
  readonly closed: boolean;
  /** What the connection's PROXY header said (its client, the socket's own peer, TLVs), or null. */
  readonly proxy: ProxiedPeer | null;
  /** Why the request was refused or cut, as a stable name, or "". */
  readonly failReason: string;
  /** The engine cannot keep the connection after this response (`appMayRead`: the app still produces it, and may yet read its body). */
  mustClose(appMayRead?: boolean): boolean;
  /** The app sent 101: after the request's body, bytes go to rawInput. */
  upgradeAccepted(): void;
  /** When the request's bytes arrived, or the response before it ended (performance.now() seconds): the deadlines' time, read at most once per read callback. */
  arrival(): number;
  /** The connection's last time reading, without a clock read: at or before the current request's arrival. */
  readonly lastKnown: number;
  /** The time a response ended (performance.now() seconds): one clock read, shared with the idle deadline. */
  finished(): number;
  /** Change a deadline of the current request: "app" (0: none) or "upgraded" (idle after 101). */
  setTimeout(kind: "app" | "upgraded", seconds: number): void;
}

/** What a Connection needs from its server. */
export interface ConnectionHost {
  readonly headLimits: HeadLimits;
  readonly bodyLimits: BodyLimits;
  readonly limits: Limits;
  readonly timeouts: Timeouts;
  /** The server's TLS options, when its connections are TLS (no bytes may bypass the TLS layer). */
  readonly tls?: object | undefined;
  readonly stopping: boolean;
  /** A drain before a stop has begun: readiness says 503, and responses close their connections. */
  readonly draining: boolean;
  /** Stopping as a replaced worker, not as the service: readiness stays 200 (engine/health). */
  readonly replaced: boolean;
  /** The probes answered before the app, or null (off: the one check a request pays). */
  readonly health: Health | null;
  /** Connections wait for a slot: close after the response instead of keeping the connection idle. */
  readonly crowded: boolean;
  /** Coarse clock in seconds, advanced by the server's one timer. */
  readonly now: number;
  /** Requests begun (max_requests counts them). */
  requests: number;
  readonly watch: RequestWatch | null;
  connectionClosed(conn: ConnectionPort): void;
  /** A request refused as malformed began with a PROXY protocol header, which this bind does not read; `client` names its sender. */
  unexpectedProxyHeader(client: string): void;
  /** A connection that closed while its response was in progress has finished that response. */
  orphanSettled(conn: ConnectionPort): void;
}

/** Sees each request start (process/watch); the bytes are valid only during the call. */
export interface RequestWatch {
  started(buf: Buffer, start: number, end: number): void;
}
